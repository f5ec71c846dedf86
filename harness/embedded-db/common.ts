// What every part of the embedded PostgreSQL (harness/embedded-db.ts) shares: the fixed names, the error
// it fails with, whom the server runs as, and running a command to its end.
import { type SpawnOptions, spawn } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';

export const USER = 'postgres';
export const PASSWORD = 'postgres';
export const DATABASE = 'test';
export const FIX = 'or set DATABASE_URL to use another PostgreSQL';

/** A failure of the embedded database, with its fix, in one line (printed without a stack: not a bug). */
export class EmbeddedDbError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message.replace(/\s*\n\s*/g, ' '), options);
    this.name = 'EmbeddedDbError';
    this.stack = `${this.name}: ${this.message}`;
  }
}

/** Whom the server runs as: ourselves, or (as root) the `postgres` user. */
export interface RunAs {
  name: string;
  uid?: number;
  gid?: number;
}

export async function serverUser(): Promise<RunAs> {
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

/** Creates `dir` (mode 755) or checks that only root can write to it: we run what we put there. */
export function secureDir(dir: string) {
  mkdirSync(dir, { recursive: true });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} must be a directory owned by root and writable only by root`);
  }
  if ((st.mode & 0o755) !== 0o755) chmodSync(dir, 0o755);
}

/** The user, working directory and environment of every command run for the server. */
export function runAsOptions(runAs: RunAs) {
  // cwd '/': our own working directory may be one the server's user cannot enter.
  const ids = runAs.uid === undefined ? {} : { uid: runAs.uid, gid: runAs.gid as number, cwd: '/' };
  return { ...ids, env: { ...process.env, LC_ALL: 'C' } };
}

/** Runs a command to its end; never throws (a failed spawn is `code: -1` with the error in `err`). */
export function run(cmd: string, args: string[], runAs: RunAs = { name: 'self' }): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const options: SpawnOptions = { ...runAsOptions(runAs), windowsHide: true, stdio: ['ignore', 'pipe', 'pipe'] };
    const child = spawn(cmd, args, options);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.once('error', (e) => resolve({ code: -1, out, err: errText(e) }));
    child.once('close', (code) => resolve({ code: code ?? -1, out: out.trim(), err: err.trim() }));
  });
}

/** Whether the server's user can run the binary (which also proves its libraries load). */
export async function runs(postgres: string, runAs: RunAs): Promise<boolean> {
  return (await run(postgres, ['--version'], runAs)).code === 0;
}

/** Whether the server's user can enter `dir`, i.e. search every directory on the way. */
export async function canEnter(dir: string, runAs: RunAs): Promise<boolean> {
  return (await run('/bin/sh', ['-c', 'cd -- "$1"', 'sh', dir], runAs)).code === 0;
}

/** The most telling line of a log: the last FATAL/ERROR/PANIC, else the last line. */
export function lastMessage(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return [...lines].reverse().find((l) => /\b(FATAL|PANIC|ERROR|error):/.test(l)) ?? lines.at(-1) ?? '';
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
