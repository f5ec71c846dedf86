// Child processes of a chaos run, each in its own process group (detached), so a kill reaches everything
// it started: the sync worker (the real CLI, `node worker/bin.mjs`, configured by env) and the app
// processes (chaos/app-proc.ts over IPC).
import { fileURLToPath } from 'node:url';
import { type Child, type ExitInfo, forkChild, ipcCalls } from '../harness/processes.ts';
import { spawnWorker } from '../harness/worker-process.ts';
import type { RegEvent } from './app-proc.ts';
import type { Op } from './types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const MAX_LOG_LINES = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One sync worker slot: a fixed port, restarted on the same port after every kill. */
export class WorkerSlot {
  readonly index: number;
  readonly port: number;
  readonly url: string;
  /** The last lines of every start of this slot's worker. */
  readonly logs: string[] = [];
  #env: Record<string, string>;
  #child: Child | undefined;
  /** Set while the orchestrator is stopping/killing it on purpose. */
  expectingExit = false;
  /** Called on an exit nobody asked for, and on log lines that matter to the checker. */
  onUnexpectedExit: (info: ExitInfo, logs: string[]) => void = () => {};
  onUnwrittenTouches: (line: string) => void = () => {};

  constructor(index: number, port: number, env: Record<string, string>) {
    this.index = index;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.#env = env;
  }

  get running(): boolean {
    return this.#child?.running ?? false;
  }

  /** Starts the CLI and waits until its listener is ready; retries when it exits early (database down). */
  async start(deadlineMs = 60_000): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      try {
        await this.#startOnce(Math.max(1000, deadline - Date.now()));
        return;
      } catch (e) {
        lastError = e;
        this.killNow();
        await this.#child?.exited;
        await sleep(300);
      }
    }
    throw new Error(`worker ${this.index} did not become ready: ${(lastError as Error)?.message}`);
  }

  async #startOnce(timeoutMs: number): Promise<void> {
    this.expectingExit = false;
    const child = spawnWorker(
      [],
      { ...this.#env, PORT: String(this.port) },
      {
        lines: this.logs,
        keep: MAX_LOG_LINES,
        maxLineLength: 400,
        onLine: (l) => {
          if (l.includes('exiting with unwritten touches')) this.onUnwrittenTouches(l);
        },
      },
    );
    this.#child = child;
    let ready = false;
    // `finished`: the exit, once the output is read to its end (the start-up check's line comes with it).
    void child.finished.then((info) => {
      if (this.expectingExit || this.#child !== child) return;
      // The CLI checks the database before it listens and exits at once when it cannot reach it (fail fast,
      // worker/README.md): while a fault holds PostgreSQL down, that is a failed start, retried by start(),
      // not a crash. Any other exit, and every exit after the listener was ready, is unexpected.
      if (!ready && this.logs.slice(-5).some((l) => l.includes('startup check of'))) return;
      this.onUnexpectedExit(info, [...this.logs]);
    });
    await child.waitForLine(/"msg":"listener ready"/, timeoutMs);
    ready = true;
  }

  /** Sends a signal to the worker's process group and waits for it to exit (SIGKILL after `timeoutMs`). */
  async kill(signal: NodeJS.Signals, timeoutMs = 20_000): Promise<ExitInfo & { forced: boolean }> {
    this.expectingExit = true;
    const child = this.#child;
    if (child === undefined || !child.running) return { code: null, signal: null, forced: false };
    const {
      code,
      signal: by,
      forced,
    } = await child.stop([
      [signal, timeoutMs],
      ['SIGKILL', Number.POSITIVE_INFINITY],
    ]);
    return { code, signal: by, forced };
  }

  /** Last resort (cleanup): SIGKILL the group, don't wait long. */
  async destroy(): Promise<void> {
    this.killNow();
    await Promise.race([this.#child?.exited, sleep(3000)]);
  }

  /** SIGKILL the group, synchronously (for an exit hook). */
  killNow(): void {
    this.expectingExit = true;
    this.#child?.signal('SIGKILL');
  }
}

export interface AppEvents {
  onOps(proc: number, ops: Op[]): void;
  onReg(proc: number, ev: RegEvent): void;
  onUnexpectedExit(proc: number, info: ExitInfo, output: string[]): void;
}

/** An app process (chaos/app-proc.ts), driven by request/response over IPC. */
export class AppProc {
  readonly index: number;
  readonly output: string[] = [];
  #child: Child;
  #call: ReturnType<typeof ipcCalls>;
  expectingExit = false;

  constructor(index: number, env: Record<string, string>, events: AppEvents) {
    this.index = index;
    this.#child = forkChild(`${root}/chaos/app-proc.ts`, [], {
      cwd: root,
      env: { ...process.env, ...env, PROC: String(index) },
      execArgv: ['--import', 'tsx'],
      lines: this.output,
      keep: MAX_LOG_LINES,
    });
    this.#call = ipcCalls(this.#child, {
      label: `app ${index}`,
      timeoutMs: 60_000,
      onEvent: (m) => {
        if (m.type === 'ops' && m.ops) events.onOps(index, m.ops as Op[]);
        else if (m.type === 'reg' && m.ev) events.onReg(index, m.ev as RegEvent);
      },
    });
    void this.#child.exited.then((info) => {
      if (!this.expectingExit) events.onUnexpectedExit(index, info, [...this.output]);
    });
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    return this.#call<T>(cmd, args, timeoutMs);
  }

  /** Relays a registry event of another app process. */
  relay(ev: RegEvent): void {
    if (this.#child.proc.connected) this.#child.proc.send({ type: 'reg', ev }, () => {});
  }

  async destroy(): Promise<void> {
    this.killNow();
    await Promise.race([this.#child.exited, sleep(3000)]);
  }

  /** SIGKILL the group, synchronously (for an exit hook). */
  killNow(): void {
    this.expectingExit = true;
    this.#child.signal('SIGKILL');
  }
}
