// Child processes of a chaos run, each in its own process group (detached), so a kill reaches everything
// it started: the sync worker (the real CLI, `node worker/bin.mjs`, configured by env) and the app
// processes (chaos/app-proc.ts over IPC).
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RegEvent } from './app-proc.ts';
import type { Op } from './types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const MAX_LOG_LINES = 400;

function killGroup(proc: ChildProcess | undefined, signal: NodeJS.Signals): void {
  if (proc?.pid === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    try {
      proc.kill(signal);
    } catch {}
  }
}

function lines(stream: NodeJS.ReadableStream | null, onLine: (l: string) => void): void {
  let buf = '';
  stream?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i !== -1) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
  });
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One sync worker slot: a fixed port, restarted on the same port after every kill. */
export class WorkerSlot {
  readonly index: number;
  readonly port: number;
  readonly url: string;
  readonly logs: string[] = [];
  #env: Record<string, string>;
  #proc: ChildProcess | undefined;
  #exited: Promise<ExitInfo> | undefined;
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
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  #log(line: string): void {
    this.logs.push(line);
    if (this.logs.length > MAX_LOG_LINES) this.logs.splice(0, this.logs.length - MAX_LOG_LINES);
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
        this.expectingExit = true;
        killGroup(this.#proc, 'SIGKILL');
        await this.#exited;
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    throw new Error(`worker ${this.index} did not become ready: ${(lastError as Error)?.message}`);
  }

  async #startOnce(timeoutMs: number): Promise<void> {
    this.expectingExit = false;
    const proc = spawn(process.execPath, [`${root}/worker/bin.mjs`], {
      cwd: root,
      env: { ...process.env, ...this.#env, PORT: String(this.port) },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#proc = proc;
    let ready: (() => void) | undefined;
    const readyP = new Promise<void>((r) => {
      ready = r;
    });
    const onLine = (l: string) => {
      this.#log(l.length > 400 ? `${l.slice(0, 400)}…` : l);
      if (l.includes('"msg":"listener ready"')) ready?.();
      if (l.includes('exiting with unwritten touches')) this.onUnwrittenTouches(l);
    };
    lines(proc.stdout, onLine);
    lines(proc.stderr, onLine);
    this.#exited = new Promise<ExitInfo>((resolve) =>
      proc.on('exit', (code, signal) => {
        const info = { code, signal };
        if (!this.expectingExit && this.#proc === proc) this.onUnexpectedExit(info, [...this.logs]);
        resolve(info);
      }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        readyP,
        this.#exited.then((i) => {
          throw new Error(`exited (${i.code ?? i.signal}) before ready: ${this.logs.slice(-3).join(' | ')}`);
        }),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('not ready in time')), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal to the worker's process group and waits for it to exit (SIGKILL after `timeoutMs`). */
  async kill(signal: NodeJS.Signals, timeoutMs = 20_000): Promise<ExitInfo & { forced: boolean }> {
    this.expectingExit = true;
    const exited = this.#exited;
    if (exited === undefined || !this.running) return { code: null, signal: null, forced: false };
    killGroup(this.#proc, signal);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const forced = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (forced) killGroup(this.#proc, 'SIGKILL');
    return { ...(await exited), forced };
  }

  /** Last resort (cleanup): SIGKILL the group, don't wait long. */
  async destroy(): Promise<void> {
    this.killNow();
    await Promise.race([this.#exited, new Promise((r) => setTimeout(r, 3000))]);
  }

  /** SIGKILL the group, synchronously (for an exit hook). */
  killNow(): void {
    this.expectingExit = true;
    killGroup(this.#proc, 'SIGKILL');
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
  #proc: ChildProcess;
  #seq = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #exited: Promise<ExitInfo>;
  expectingExit = false;

  constructor(index: number, env: Record<string, string>, events: AppEvents) {
    this.index = index;
    this.#proc = fork(`${root}/chaos/app-proc.ts`, [], {
      cwd: root,
      env: { ...process.env, ...env, PROC: String(index) },
      execArgv: ['--import', 'tsx'],
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const onLine = (l: string) => {
      this.output.push(l);
      if (this.output.length > MAX_LOG_LINES) this.output.splice(0, this.output.length - MAX_LOG_LINES);
    };
    lines(this.#proc.stdout, onLine);
    lines(this.#proc.stderr, onLine);
    this.#proc.on(
      'message',
      (m: { id?: number; ok?: boolean; value?: unknown; error?: string; type?: string; ops?: Op[]; ev?: RegEvent }) => {
        if (m.id !== undefined) {
          const p = this.#pending.get(m.id);
          this.#pending.delete(m.id);
          if (m.ok) p?.resolve(m.value);
          else p?.reject(new Error(m.error));
        } else if (m.type === 'ops' && m.ops) events.onOps(index, m.ops);
        else if (m.type === 'reg' && m.ev) events.onReg(index, m.ev);
      },
    );
    this.#exited = new Promise<ExitInfo>((resolve) =>
      this.#proc.on('exit', (code, signal) => {
        const info = { code, signal };
        for (const p of this.#pending.values()) p.reject(new Error(`app ${index} exited (${code ?? signal})`));
        this.#pending.clear();
        if (!this.expectingExit) events.onUnexpectedExit(index, info, [...this.output]);
        resolve(info);
      }),
    );
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = ++this.#seq;
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`app ${this.index}: ${cmd} timed out`));
      }, timeoutMs);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      try {
        this.#proc.send({ id, cmd, args });
      } catch (e) {
        this.#pending.delete(id);
        clearTimeout(timer);
        reject(e as Error);
      }
    });
  }

  /** Relays a registry event of another app process. */
  relay(ev: RegEvent): void {
    if (this.#proc.connected) this.#proc.send({ type: 'reg', ev }, () => {});
  }

  async destroy(): Promise<void> {
    this.killNow();
    await Promise.race([this.#exited, new Promise((r) => setTimeout(r, 3000))]);
  }

  /** SIGKILL the group, synchronously (for an exit hook). */
  killNow(): void {
    this.expectingExit = true;
    killGroup(this.#proc, 'SIGKILL');
  }
}
