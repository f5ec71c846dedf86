// Real child processes for the worker tests: the worker CLI and manager processes driven over IPC.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface WorkerProcess {
  url: string;
  port: number;
  proc: ChildProcess;
  logs: string[];
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
}

/** Starts `pg-edge-session-worker` (the real CLI) in its own process group. */
export async function startWorkerProcess(args: string[], env: Record<string, string>): Promise<WorkerProcess> {
  const proc = spawn(process.execPath, [`${root}/worker/bin.mjs`, ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onLine = (line: string) => {
    logs.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  for (const s of [proc.stdout, proc.stderr]) {
    let buf = '';
    s?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i !== -1) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
    });
  }
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const waitForLog = (re: RegExp, timeoutMs = 20000) => {
    const found = logs.find((l) => re.test(l));
    if (found) return Promise.resolve(found);
    return new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in worker logs:\n${logs.join('\n')}`)), timeoutMs);
      waiters.push({
        re,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
      });
    });
  };
  const kill = (signal: NodeJS.Signals) => {
    try {
      process.kill(-(proc.pid as number), signal);
    } catch {}
  };
  const listening = await Promise.race([
    waitForLog(/"msg":"worker listening"/),
    exited.then((c) => {
      throw new Error(`worker exited with ${c} before listening:\n${logs.join('\n')}`);
    }),
  ]);
  const url = JSON.parse(listening).url as string;
  await waitForLog(/"msg":"listener ready"/);
  return { url, port: Number(new URL(url).port), proc, logs, exited, kill, waitForLog };
}

/** A manager in another process (test/support/manager-proc.ts), driven by request/response over IPC. */
export interface ManagerProcess {
  call<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  /** Messages the process sent on its own (e.g. invalidation timestamps). */
  events: { type: string; [k: string]: unknown }[];
  close(): Promise<void>;
}

export async function startManagerProcess(env: Record<string, string>): Promise<ManagerProcess> {
  const proc = fork(`${root}/test/support/manager-proc.ts`, [], {
    cwd: root,
    env: { ...process.env, ...env },
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const events: ManagerProcess['events'] = [];
  proc.on('message', (m: { id?: number; ok?: boolean; value?: unknown; error?: string; type?: string }) => {
    if (m.id !== undefined) {
      const p = pending.get(m.id);
      pending.delete(m.id);
      if (m.ok) p?.resolve(m.value);
      else p?.reject(new Error(m.error));
    } else if (m.type) events.push(m as ManagerProcess['events'][number]);
  });
  const call = <T>(cmd: string, args: Record<string, unknown> = {}) =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      proc.send({ id, cmd, args });
    });
  await call('ping');
  return {
    call,
    events,
    close: async () => {
      await call('close').catch(() => {});
      proc.kill('SIGKILL');
    },
  };
}
