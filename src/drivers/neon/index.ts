/**
 * Neon's driver for the library, one folder as drizzle-orm's `neon-serverless/` is: per-connection settings
 * (`settings.ts`, the one copy of what a local WebSocket proxy needs), a connection and its connect errors
 * (`client.ts`), the executor that opens one connection per statement (`executor.ts`), and the sync host's
 * connections (`host-connections.ts`, loaded lazily by `neonHostDb` in `host-db.ts`). Importing this index
 * loads `@neondatabase/serverless`, an optional peer: only `pg-edge-session/neon` and
 * `pg-edge-session/durable-object` do; `pg-edge-session/host` imports `host-db.ts` and `settings.ts` alone.
 * Edge-safe: Web APIs only.
 */
export { type NeonExecutor, type NeonExecutorOptions, neonExecutor } from './executor.ts';
export { createNeonHostDb } from './host-connections.ts';
export { type NeonHostDbOptions, neonHostDb } from './host-db.ts';
export { type NeonConnectionSettings, neonSettings } from './settings.ts';
