/**
 * Neon's driver for the library, one folder as drizzle-orm's `neon-serverless/` is: per-connection settings
 * (`settings.ts`, the one copy of what a local WebSocket proxy needs), a connection and its connect errors
 * (`client.ts`), the executor that opens one connection per statement (`executor.ts`), and the sync host's
 * connections (`host-connections.ts`). Importing this index loads `@neondatabase/serverless`, an optional
 * peer: only `pg-edge-session/neon` and `pg-edge-session/durable-object` do. `pg-edge-session/host` imports
 * `settings.ts` and `host-db.ts` alone: its `neonHostDb` imports `host-connections.ts` at its first
 * connect. This index does not re-export `neonHostDb`, so a Workers bundle of `pg-edge-session/neon` holds no
 * dynamic import (a bundler makes every module such an import reaches lazily initialised; nothing under
 * `src/` calls drizzle while it loads, test/system/module-evaluation.test.ts, so that order is safe too).
 * Edge-safe: Web APIs only.
 */
export { type NeonExecutor, type NeonExecutorOptions, neonExecutor } from './executor.ts';
export { createNeonHostDb } from './host-connections.ts';
export { type NeonConnectionSettings, neonSettings } from './settings.ts';
