// The library's processes as the tests and the bench run them: the sync worker (the real CLI,
// `node worker/bin.mjs`) and a manager in another process (harness/manager-proc.ts), driven over IPC.
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Child, type ChildOptions, forkChild, ipcCalls, spawnChild } from './processes.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The worker CLI with `args` and `env` (added to ours), in a process group of its own; not waited for. */
export function spawnWorker(args: string[], env: Record<string, string>, options: ChildOptions = {}): Child {
  return spawnChild(process.execPath, [`${root}/worker/bin.mjs`, ...args], { cwd: root, env: { ...process.env, ...env }, ...options });
}

export interface WorkerProcess {
  url: string;
  port: number;
  proc: ChildProcess;
  logs: string[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Signals the worker's process group. */
  kill(signal: NodeJS.Signals): void;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** Starts `pg-edge-session-worker` (the real CLI) and waits until it listens and its listener is ready. */
export async function startWorkerProcess(args: string[], env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawnWorker(args, env);
  const url = JSON.parse(await child.waitForLine(/"msg":"worker listening"/)).url as string;
  await child.waitForLine(/"msg":"listener ready"/);
  return {
    url,
    port: Number(new URL(url).port),
    proc: child.proc,
    logs: child.lines,
    exited: child.exited.then((e) => e.code),
    kill: child.signal,
    waitForLog: child.waitForLine,
  };
}

/** A manager in another process (harness/manager-proc.ts), driven by request/response over IPC. */
export interface ManagerProcess {
  call<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  /** Messages the process sent on its own (e.g. invalidation timestamps). */
  events: { type: string; [k: string]: unknown }[];
  close(): Promise<void>;
}

export async function startManagerProcess(env: Record<string, string>): Promise<ManagerProcess> {
  const child = forkChild(`${root}/harness/manager-proc.ts`, [], {
    cwd: root,
    env: { ...process.env, ...env },
    execArgv: ['--import', 'tsx'],
    output: 'inherit',
  });
  const events: ManagerProcess['events'] = [];
  const call = ipcCalls(child, {
    label: 'manager process',
    onEvent: (m) => m.type && events.push(m as ManagerProcess['events'][number]),
  });
  await call('ping');
  return {
    call,
    events,
    close: async () => {
      await call('close').catch(() => {});
      child.signal('SIGKILL');
    },
  };
}
