/**
 * `pg-edge-session/feed`: reading the durable change record (what changed after a cursor), for code that
 * keeps its own cache fresh without a `SyncClient`. The work lives in `src/db/feed.ts`.
 */
export * from './db/feed.ts';
