#!/usr/bin/env node
// In this repository only (not in the package): the worker CLI from its TypeScript sources through tsx's
// loader, with Node as the process (the process tests signal it). The installed package's bin is
// dist/cli.js, built JavaScript that plain node runs.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
