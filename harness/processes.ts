// Child processes of the harness (test/, chaos/, bench/, test-e2e/, the embedded PostgreSQL): each in a
// process group of its own (detached), so a signal reaches everything it started and a terminal's Ctrl-C
// (sent to the whole foreground group) does not reach it. Its output is read as lines for as long as it
// runs: a pipe nobody reads would block the child once full.
import { type ChildProcess, fork, spawn } from 'node:child_process';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (EACCES, ENOENT): no exit follows such an error. */
  error?: string;
}

export interface ChildOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as another user (the embedded PostgreSQL as root). */
  uid?: number;
  gid?: number;
  /** Which outputs to read as lines ('inherit': passed through to ours, not read). Default both. */
  output?: 'both' | 'stderr' | 'inherit';
  /** The array the lines go to (one that outlives the process, e.g. across restarts). Default a new one. */
  lines?: string[];
  /** Keep only the last `keep` lines. Default all. */
  keep?: number;
  /** Lines longer than this are kept cut (with …); `onLine` and `waitForLine` see them whole. Default no limit. */
  maxLineLength?: number;
  onLine?: (line: string) => void;
  /** Signals go to the process alone, not its group: a server that stops its own children (PostgreSQL). */
  signalProcessOnly?: boolean;
}

export interface Child {
  readonly proc: ChildProcess;
  /** Output lines (stdout and stderr as they came). */
  readonly lines: string[];
  readonly exited: Promise<ExitInfo>;
  /** `exited`, once the output is read to its end too (or half a second after the exit, when a grandchild holds it open). */
  readonly finished: Promise<ExitInfo>;
  readonly running: boolean;
  /** The lines read so far and the unfinished last one. */
  text(): string;
  /**
   * The first line matching `re` (also one already kept); rejects after `timeoutMs`, or when the process
   * exited without printing it (once its output is read to the end, or half a second after the exit).
   */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /**
   * Sends `signal` to the process group, also after the process itself exited (what it started may still
   * run), or to the process alone while it runs (see `signalProcessOnly`); never throws.
   */
  signal(signal: NodeJS.Signals): void;
  /**
   * Each step's signal in turn, while the process runs, waiting up to the step's ms for it to exit.
   * `forced`: it outlived every step but the last.
   */
  stop(steps: readonly (readonly [NodeJS.Signals, number])[]): Promise<ExitInfo & { forced: boolean }>;
}

/** Starts `file args` in a process group of its own. */
export function spawnChild(file: string, args: string[], options: ChildOptions = {}): Child {
  const proc = spawn(file, args, {
    ...processOptions(options),
    stdio: ['ignore', options.output === 'both' || options.output === undefined ? 'pipe' : 'ignore', 'pipe'],
  });
  return watch(proc, options);
}

/** Starts a module under Node (`execArgv`, e.g. `['--import', 'tsx']`) with an IPC channel, in a process group of its own. */
export function forkChild(module: string, args: string[], options: ChildOptions & { execArgv?: string[] } = {}): Child {
  const stdio = options.output === 'inherit' ? 'inherit' : 'pipe';
  const proc = fork(module, args, {
    ...processOptions(options),
    ...(options.execArgv ? { execArgv: options.execArgv } : {}),
    stdio: ['ignore', stdio, stdio, 'ipc'],
  });
  return watch(proc, options);
}

function processOptions(options: ChildOptions) {
  const ids = options.uid === undefined ? {} : { uid: options.uid, gid: options.gid as number };
  return { cwd: options.cwd, env: options.env ?? process.env, ...ids, detached: true, windowsHide: true };
}

function watch(proc: ChildProcess, options: ChildOptions): Child {
  const lines = options.lines ?? [];
  // This process's own lines: a caller's `lines` may hold an earlier process's too (a restarted worker's log),
  // and waitForLine must not take their line for this one's.
  const own = options.lines === undefined ? lines : [];
  const waiters = new Set<(line: string) => void>();
  const onLine = (line: string) => {
    const max = options.maxLineLength;
    const kept = max !== undefined && line.length > max ? `${line.slice(0, max)}…` : line;
    for (const list of own === lines ? [lines] : [lines, own]) {
      list.push(kept);
      if (options.keep !== undefined && list.length > options.keep) list.splice(0, list.length - options.keep);
    }
    options.onLine?.(line);
    for (const w of [...waiters]) w(line);
  };
  const partials = [readLines(proc.stdout, onLine), readLines(proc.stderr, onLine)];
  const exited = new Promise<ExitInfo>((resolve) => {
    proc.once('error', (e) => resolve({ code: null, signal: null, error: e.message }));
    proc.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // 'close' follows 'exit' once the pipes are drained (or never, when a grandchild holds them open).
  const drained = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  const finished = exited.then(async (e) => {
    await within(drained, 500);
    return e;
  });
  proc.on('error', () => {}); // later errors (a failed kill) are seen through `exited` or not at all
  const running = () => proc.pid !== undefined && proc.exitCode === null && proc.signalCode === null;
  const signal = (sig: NodeJS.Signals) => {
    try {
      if (options.signalProcessOnly || proc.pid === undefined) {
        if (running()) proc.kill(sig);
      } else process.kill(-proc.pid, sig);
    } catch {
      try {
        if (running()) proc.kill(sig);
      } catch {}
    }
  };
  const text = () => [...lines, ...partials.map((p) => p()).filter((l) => l !== '')].join('\n');
  const waitForLine = (re: RegExp, timeoutMs = 20_000) => {
    const found = own.find((l) => re.test(l));
    if (found !== undefined) return Promise.resolve(found);
    return new Promise<string>((resolve, reject) => {
      const done = (settle: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        settle();
      };
      const check = (line: string) => re.test(line) && done(() => resolve(line));
      const timer = setTimeout(() => done(() => reject(new Error(`no ${re} within ${timeoutMs} ms:\n${text()}`))), timeoutMs);
      waiters.add(check);
      void finished.then((e) => done(() => reject(new Error(`exited (${describeExit(e)}) before ${re}:\n${text()}`))));
    });
  };
  const stop = async (steps: readonly (readonly [NodeJS.Signals, number])[]) => {
    let forced = false;
    for (const [i, [sig, ms]] of steps.entries()) {
      if (!running()) break;
      forced = i > 0;
      signal(sig);
      await within(exited, ms);
    }
    return { ...(running() ? { code: null, signal: null } : await exited), forced };
  };
  return {
    proc,
    lines,
    exited,
    finished,
    get running() {
      return running();
    },
    text,
    waitForLine,
    signal,
    stop,
  };
}

/** Calls `onLine` with each complete line of `stream`; returns a reader of the unfinished last one. */
function readLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): () => string {
  let buf = '';
  stream?.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i = buf.indexOf('\n');
    while (i !== -1) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
  });
  return () => buf;
}

export function describeExit(e: ExitInfo): string {
  return e.error ?? (e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`);
}

/** Waits for `p`, at most `ms` (Infinity: as long as it takes); true when `p` settled in time. */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  if (ms === Number.POSITIVE_INFINITY) return p.then(() => true);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const settled = await Promise.race([p.then(() => true), new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)))]);
  clearTimeout(timer);
  return settled;
}

export interface IpcMessage {
  id?: number;
  ok?: boolean;
  value?: unknown;
  error?: string;
  type?: string;
  [k: string]: unknown;
}

/**
 * Request/response over a forked child's IPC channel: `{ id, cmd, args }` out, `{ id, ok, value | error }`
 * back; messages without an id go to `onEvent`. Calls pending when the child exits are rejected.
 */
export function ipcCalls(child: Child, options: { label: string; timeoutMs?: number; onEvent?: (m: IpcMessage) => void }) {
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  child.proc.on('message', (m: IpcMessage) => {
    if (m.id === undefined) return options.onEvent?.(m);
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p?.resolve(m.value);
    else p?.reject(new Error(m.error));
  });
  void child.exited.then((e) => {
    for (const p of pending.values()) p.reject(new Error(`${options.label} exited (${e.code ?? e.signal})`));
    pending.clear();
  });
  return <T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = options.timeoutMs): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++seq;
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => settle(() => reject(new Error(`${options.label}: ${cmd} timed out`))), timeoutMs);
      const settle = (fn: () => void) => {
        clearTimeout(timer);
        pending.delete(id);
        fn();
      };
      pending.set(id, { resolve: (v) => settle(() => resolve(v as T)), reject: (e) => settle(() => reject(e)) });
      try {
        child.proc.send({ id, cmd, args });
      } catch (e) {
        settle(() => reject(e as Error));
      }
    });
}
