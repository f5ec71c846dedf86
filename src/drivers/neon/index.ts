/**
 * Neon's driver for the library, one folder as drizzle-orm's `neon-serverless/` is: per-connection settings
 * (`settings.ts`, the one copy of what a local WebSocket proxy needs), a connection and its connect errors
 * (`client.ts`), the executor that opens one connection per statement (`executor.ts`), and the sync host's
 * connections (`host-connections.ts`). Importing this index loads `@neondatabase/serverless`, an optional
 * peer: only `pg-edge-session/neon` and `pg-edge-session/durable-object` do. `pg-edge-session/host` imports
 * `settings.ts` and `host-db.ts` alone: its `neonHostDb` imports `host-connections.ts` at its first
 * connect. This index does not re-export `neonHostDb`: a bundler that meets that dynamic import makes
 * every module it reaches lazily initialised, drizzle-orm's `sql` among them, before the module-level
 * statements of `src/db/` that use it (workerd: "sql.raw is not a function").
 * Edge-safe: Web APIs only.
 */
export { type NeonExecutor, type NeonExecutorOptions, neonExecutor } from './executor.ts';
export { createNeonHostDb } from './host-connections.ts';
export { type NeonConnectionSettings, neonSettings } from './settings.ts';
