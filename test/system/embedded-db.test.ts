// The embedded PostgreSQL of `npm start` and of `npm test` without DATABASE_URL (harness/embedded-db.ts).
// As root, the server runs as the user `postgres`, who cannot enter a private (mode 700) parent
// directory; what cannot work must fail as one actionable line, never crash the process.
// (The whole path from a fresh clone in a private directory is scripts/check-private-clone.sh, in .ci/run.)
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { copyBinaries, EmbeddedDbError, platformBinaries, startEmbeddedPostgres } from '../../harness/embedded-db.ts';

const asRoot = process.geteuid?.() === 0;
// mkdtemp gives mode 700: a private parent, as a clone under /root or mktemp -d has.
const privateParent = mkdtempSync(join(tmpdir(), 'pges-private-'));
afterAll(() => rmSync(privateParent, { recursive: true, force: true }));

async function query(url: string, sql: string) {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql)).rows;
  } finally {
    await c.end();
  }
}

async function failure(p: Promise<unknown>): Promise<EmbeddedDbError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(EmbeddedDbError);
  const err = e as EmbeddedDbError;
  expect(err.message).not.toContain('\n');
  expect(err.stack).toBe(`EmbeddedDbError: ${err.message}`); // what npm start prints: one line
  expect(err.message).toMatch(/DATABASE_URL|chown|choose/); // and how to fix it
  return err;
}

/** Every file and directory under `dir`, with its permission bits. */
function walk(dir: string, found: { path: string; mode: number; isDir: boolean }[] = []) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isSymbolicLink()) continue;
    found.push({ path, mode: statSync(path).mode & 0o777, isDir: e.isDirectory() });
    if (e.isDirectory()) walk(path, found);
  }
  return found;
}

describe('embedded PostgreSQL', () => {
  it("copied out of a private clone installed under umask 077, the binaries run as the server's user", async () => {
    const { postgres } = await platformBinaries();
    // A private clone's native tree, as an install under umask 077 leaves it: only its owner may read.
    const source = join(privateParent, 'native');
    cpSync(dirname(dirname(postgres)), source, { recursive: true, verbatimSymlinks: true });
    for (const f of walk(source)) chmodSync(f.path, f.isDir || f.mode & 0o100 ? 0o700 : 0o600);
    const cacheParent = mkdtempSync(join(tmpdir(), 'pges-bin-'));
    chmodSync(cacheParent, 0o755);
    try {
      const target = join(cacheParent, 'postgres');
      copyBinaries(source, target);
      for (const f of walk(target)) expect([0o755, 0o644]).toContain(f.mode);
      // As root the server runs as `postgres`; otherwise as ourselves.
      const ids = asRoot
        ? {
            uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
            gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
          }
        : {};
      const copied = spawnSync(join(target, 'bin', 'postgres'), ['--version'], { ...ids, cwd: '/', encoding: 'utf8' });
      expect(copied.error).toBeUndefined();
      expect(copied.stdout).toMatch(/^postgres \(PostgreSQL\) \d+/);
      if (asRoot) {
        // The case itself: from the private clone, that user cannot even start the binary.
        const original = spawnSync(join(source, 'bin', 'postgres'), ['--version'], { ...ids, cwd: '/' });
        expect((original.error as NodeJS.ErrnoException | undefined)?.code).toBe('EACCES');
      }
      // A second start finds the copy in place and keeps it.
      copyBinaries(source, target);
      expect(readdirSync(cacheParent)).toEqual(['postgres']);
    } finally {
      rmSync(cacheParent, { recursive: true, force: true });
    }
  });

  it('a chosen data directory inside a private parent: as root one line saying so (nothing left behind); otherwise it runs', async () => {
    const dir = join(privateParent, 'chosen');
    if (asRoot) {
      const err = await failure(startEmbeddedPostgres({ dir, persistent: true }));
      expect(err.message).toContain(`cannot enter ${dir}`);
      expect(existsSync(dir)).toBe(false);
    } else {
      const db = await startEmbeddedPostgres({ dir, persistent: true });
      try {
        expect(db.dir).toBe(dir);
        expect(await query(db.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
      } finally {
        await db.stop();
      }
    }
  });

  it("movable (npm start's default): as root the data moves where the server's user can reach it, and is there at the next start", async () => {
    const dir = join(privateParent, 'x', '.data', 'pg');
    let moved: string | undefined;
    try {
      const first = await startEmbeddedPostgres({ dir, persistent: true, movable: true });
      moved = first.dir;
      try {
        if (asRoot) expect(first.dir).toMatch(/^\/var\/lib\/pg-edge-session\/[0-9a-f]{16}$/);
        else expect(first.dir).toBe(dir);
        await query(first.url, 'CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)');
      } finally {
        await first.stop();
      }
      const second = await startEmbeddedPostgres({ dir, persistent: true, movable: true });
      try {
        expect(second.dir).toBe(first.dir);
        expect(await query(second.url, 'SELECT v FROM kept')).toEqual([{ v: 42 }]);
        expect(await query(second.url, "SELECT current_setting('server_encoding') AS e")).toEqual([{ e: 'UTF8' }]);
      } finally {
        await second.stop();
      }
    } finally {
      if (moved?.startsWith('/var/lib/pg-edge-session/')) rmSync(moved, { recursive: true, force: true });
    }
  });

  it('a directory holding something else is refused in one line, its files untouched', async () => {
    const dir = join(tmpdir(), `pges-not-pg-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'notes.txt'), 'mine');
    try {
      const err = await failure(startEmbeddedPostgres({ dir, persistent: true }));
      expect(err.message).toContain('not empty');
      expect(readFileSync(join(dir, 'notes.txt'), 'utf8')).toBe('mine');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("npm start's data directory keeps its port across starts while it is free, and takes another when it is not", async () => {
    const dir = join(tmpdir(), `pges-port-${process.pid}`);
    const portOf = (db: { url: string }) => Number(new URL(db.url).port);
    const blocker = createServer();
    try {
      const first = await startEmbeddedPostgres({ dir, persistent: true });
      const port = portOf(first);
      await first.stop();
      const second = await startEmbeddedPostgres({ dir, persistent: true });
      try {
        expect(portOf(second)).toBe(port);
      } finally {
        await second.stop();
      }
      // Another process holds that port now: the next start still comes up, elsewhere.
      await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
      const third = await startEmbeddedPostgres({ dir, persistent: true });
      try {
        expect(portOf(third)).not.toBe(port);
        expect(await query(third.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
      } finally {
        await third.stop();
      }
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a server that cannot start (its port is taken) is a one-line error naming the port, not a crash', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as { port: number }).port;
    try {
      const err = await failure(startEmbeddedPostgres({ port }));
      expect(err.message).toContain(`port ${port} is in use`);
    } finally {
      blocker.close();
    }
  });
});
