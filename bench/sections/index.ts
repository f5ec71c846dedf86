// Every section, in the order `npm run bench` runs them. Add a section: write bench/sections/<name>.ts
// exporting a `Section`, and list it here.
import type { Section } from '../lib/context.ts';
import { cleanup } from './cleanup.ts';
import { floors } from './floors.ts';
import { hit } from './hit.ts';
import { http } from './http.ts';
import { invalidation } from './invalidation.ts';
import { memory } from './memory.ts';
import { miss } from './miss.ts';
import { scale } from './scale.ts';
import { subscribers } from './subscribers.ts';
import { touch } from './touch.ts';
import { workers } from './workers.ts';
import { writes } from './writes.ts';

export const SECTIONS: Section[] = [floors, hit, miss, writes, touch, cleanup, invalidation, subscribers, http, memory, workers, scale];
