// A TCP proxy in front of PostgreSQL (or the WebSocket proxy) for the tests, the chaos run and the bench.
// One copy serves them all:
// - counts: bytes each way (what a Neon compute would see as traffic), connections open now and opened,
//   client→server flights (a flight: the client sends after it last heard from the server, or first);
// - distance: each chunk is forwarded `delayMs` after it arrived, in order, in each direction (a round trip
//   costs 2 × delayMs); model 'hyperdrive' lets the start-up through undelayed and uncounted;
// - faults: `down()`/`up()` (every connection closed, new ones refused, then listening again on the same
//   ports), `pause(ms, tag?, direction?)` (stop forwarding, connections stay open, bytes wait), `cut(tag?)`
//   (destroy the connections at once), `holdTerminate` (a connection whose client sent PostgreSQL's
//   Terminate is left open, neither side seeing it, until `release()`);
// - tags: `listen(tag)` opens another port whose connections carry the tag, so a fault can hit one process.
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export type ProxyTarget = string | { host?: string; port: number };

export interface TcpProxyOptions {
  /** One-way delay in ms; change it between measurements with `delayMs`. Default 0. */
  delayMs?: number;
  /**
   * 'hyperdrive': chunks before the server's first ReadyForQuery go through undelayed and uncounted: the
   * start-up that Hyperdrive answers in the Worker's own location from its pool, not across the distance.
   */
  model?: 'plain' | 'hyperdrive';
}

export interface TcpProxy {
  /** Port of the default listener (tag 'default'). */
  port: number;
  /** The target URL through the proxy (same user, password and database), when the target was a URL. */
  url: string;
  /** Opens another listening port whose connections carry `tag`. */
  listen(tag: string): Promise<number>;
  /** Bytes from clients to the server and back, since the start or the last `reset()`. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Connections open now (of one tag, or all); `open` is all of them. */
  connections(tag?: string): number;
  readonly open: number;
  /** Connections opened since the start or the last `reset()`. */
  readonly opened: number;
  /**
   * Client→server flights since the start or the last `reset()`, not counting the closes: a flight that
   * starts with PostgreSQL's Terminate (raw, or alone in a WebSocket frame) or a WebSocket close frame is in `closeFlights`.
   */
  readonly flights: number;
  readonly closeFlights: number;
  reset(): void;
  delayMs: number;
  /** While true, a connection whose client sends Terminate ('X') is left open: neither side sees it until released. */
  holdTerminate: boolean;
  /** Connections held by `holdTerminate` now. */
  readonly held: number;
  release(): void;
  /** Stops forwarding (for one tag, or all; both directions or only responses) for `ms`; resolves when it resumed. */
  pause(ms: number, tag?: string, direction?: 'both' | 'responses'): Promise<void>;
  /** Destroys the proxied connections (of one tag, or all); returns how many. */
  cut(tag?: string): number;
  /** Closes every connection and refuses new ones (connection refused) until `up()`. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

const ALL = '*';
const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

/** A chunk that closes: Terminate ('X', length 4) raw or as the whole payload of a masked WebSocket frame, or a WebSocket close frame. */
function isClose(d: Buffer): boolean {
  if (d.length === 5) return d.equals(TERMINATE);
  if (d.length === 11 && d[0] === 0x82 && d[1] === 0x85) return ((d[6] as number) ^ (d[2] as number)) === 0x58;
  return d[0] === 0x88;
}

/** Runs `fn` at `at` (performance.now() time), now when that has passed. */
function later(at: number, fn: () => void) {
  const wait = at - performance.now();
  if (wait <= 0.5) fn();
  else setTimeout(fn, wait);
}

/** What every connection of one proxy shares. */
interface Shared {
  delayMs: number;
  holdTerminate: boolean;
  hyperdrive: boolean;
  counts: { bytesUp: number; bytesDown: number; opened: number; flights: number; closeFlights: number };
  /** The releases of the connections held by `holdTerminate`. */
  releases: Set<() => void>;
  /** Whether reading from this side of a connection of `tag` is held: the upstream side carries responses. */
  isPaused(tag: string, side: 'client' | 'upstream'): boolean;
}

/** One proxied connection. */
class Link {
  readonly upstream: Socket;
  /** Past the start-up (always, but with model 'hyperdrive'). */
  #started: boolean;
  #last: 'none' | 'up' | 'down' = 'none';
  #holding = false;
  readonly #pending: Buffer[] = [];
  /** When the last chunk each way is due (later ones never overtake it). */
  #upAt = 0;
  #downAt = 0;

  constructor(
    readonly tag: string,
    readonly client: Socket,
    target: { host: string; port: number },
    readonly shared: Shared,
    onGone: (link: Link) => void,
  ) {
    this.#started = !shared.hyperdrive;
    shared.counts.opened++;
    client.setNoDelay(true);
    client.pause();
    this.upstream = tcpConnect(target, () => this.apply());
    this.upstream.setNoDelay(true);
    const drop = () => {
      this.destroy();
      onGone(this);
    };
    client.on('data', (d: Buffer) => this.#fromClient(d));
    this.upstream.on('data', (d: Buffer) => this.#fromServer(d));
    client.on('end', () => later(this.#upAt + this.#delay(), () => this.upstream.end()));
    this.upstream.on('end', () => !this.#holding && later(this.#downAt + this.#delay(), () => client.end()));
    client.on('error', drop).on('close', () => later(this.#upAt + shared.delayMs, drop));
    this.upstream.on('error', drop).on('close', () => later(this.#downAt + shared.delayMs, drop));
  }

  #delay() {
    return this.#started ? this.shared.delayMs : 0;
  }

  #fromClient(d: Buffer) {
    const { counts } = this.shared;
    counts.bytesUp += d.length;
    if (this.#started && this.#last !== 'up') {
      if (isClose(d)) counts.closeFlights++;
      else counts.flights++;
    }
    this.#last = 'up';
    if (this.shared.holdTerminate && d.includes(TERMINATE)) {
      this.#holding = true;
      this.shared.releases.add(() => {
        this.#holding = false;
        for (const b of this.#pending.splice(0)) this.upstream.write(b);
        this.upstream.write(d);
      });
      return;
    }
    if (this.#holding) this.#pending.push(d);
    else {
      this.#upAt = Math.max(this.#upAt, performance.now() + this.#delay());
      later(this.#upAt, () => this.#write('client', d));
    }
  }

  #fromServer(d: Buffer) {
    this.shared.counts.bytesDown += d.length;
    const delay = this.#delay();
    if (!this.#started && d.includes(READY_FOR_QUERY)) this.#started = true;
    this.#last = 'down';
    this.#downAt = Math.max(this.#downAt, performance.now() + delay);
    later(this.#downAt, () => this.#write('upstream', d));
  }

  /** Writes what came from `side` to the other side; a full buffer stops reading `side` until it drains. */
  #write(side: 'client' | 'upstream', d: Buffer) {
    const from = side === 'client' ? this.client : this.upstream;
    const to = side === 'client' ? this.upstream : this.client;
    if (to.write(d)) return;
    from.pause();
    to.once('drain', () => {
      if (!this.shared.isPaused(this.tag, side)) from.resume();
    });
  }

  /** Pauses or resumes reading each side as the proxy's pauses say. */
  apply() {
    if (this.upstream.connecting) return;
    for (const side of ['client', 'upstream'] as const) {
      if (this.shared.isPaused(this.tag, side)) this[side].pause();
      else this[side].resume();
    }
  }

  destroy() {
    this.client.destroy();
    this.upstream.destroy();
  }
}

type Pause = { direction: 'both' | 'responses'; timer: ReturnType<typeof setTimeout>; waiters: (() => void)[] };

class ProxyServer implements TcpProxy, Shared {
  port = 0;
  url = '';
  delayMs: number;
  holdTerminate = false;
  readonly hyperdrive: boolean;
  readonly counts = { bytesUp: 0, bytesDown: 0, opened: 0, flights: 0, closeFlights: 0 };
  readonly releases = new Set<() => void>();
  readonly #links = new Set<Link>();
  /** Paused tags ('*': everyone) → direction and when they resume. */
  readonly #paused = new Map<string, Pause>();
  /** Listening ports by tag; no server while down. */
  readonly #listeners = new Map<string, { port: number; server?: Server }>();

  constructor(
    readonly target: { host: string; port: number },
    options: TcpProxyOptions,
  ) {
    this.delayMs = options.delayMs ?? 0;
    this.hyperdrive = options.model === 'hyperdrive';
  }

  isPaused(tag: string, side: 'client' | 'upstream') {
    return [ALL, tag].some((key) => {
      const e = this.#paused.get(key);
      return e !== undefined && (e.direction === 'both' || side === 'upstream');
    });
  }

  async listen(tag: string, port = 0): Promise<number> {
    const server = createServer((client) => this.#links.add(new Link(tag, client, this.target, this, (l) => this.#links.delete(l))));
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    const bound = typeof address === 'object' && address ? address.port : 0;
    this.#listeners.set(tag, { port: bound, server });
    return bound;
  }

  get bytesUp() {
    return this.counts.bytesUp;
  }
  get bytesDown() {
    return this.counts.bytesDown;
  }
  get opened() {
    return this.counts.opened;
  }
  get flights() {
    return this.counts.flights;
  }
  get closeFlights() {
    return this.counts.closeFlights;
  }
  reset() {
    Object.assign(this.counts, { bytesUp: 0, bytesDown: 0, opened: 0, flights: 0, closeFlights: 0 });
  }

  #of(tag: string) {
    return [...this.#links].filter((l) => tag === ALL || l.tag === tag);
  }
  connections(tag = ALL) {
    return this.#of(tag).length;
  }
  get open() {
    return this.#links.size;
  }

  get held() {
    return this.releases.size;
  }
  release() {
    for (const r of [...this.releases]) {
      this.releases.delete(r);
      r();
    }
  }

  pause(ms: number, tag = ALL, direction: 'both' | 'responses' = 'both') {
    const entry = this.#paused.get(tag);
    if (entry !== undefined) clearTimeout(entry.timer);
    const waiters = entry?.waiters ?? [];
    this.#paused.set(tag, { direction, timer: setTimeout(() => this.#resume(tag), ms), waiters });
    for (const l of this.#of(tag)) l.apply();
    return new Promise<void>((r) => waiters.push(r));
  }

  #resume(tag: string) {
    const entry = this.#paused.get(tag);
    this.#paused.delete(tag);
    for (const l of this.#links) l.apply();
    for (const w of entry?.waiters ?? []) w();
  }

  cut(tag = ALL) {
    const hit = this.#of(tag);
    for (const l of hit) {
      this.#links.delete(l);
      l.destroy();
    }
    return hit.length;
  }

  async down() {
    const servers = [...this.#listeners.values()].flatMap((l) => (l.server ? [l.server] : []));
    for (const l of this.#listeners.values()) l.server = undefined;
    this.cut();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }

  async up() {
    for (const [tag, l] of this.#listeners) if (!l.server) await this.listen(tag, l.port);
  }

  async close() {
    for (const [tag, e] of [...this.#paused]) {
      clearTimeout(e.timer);
      this.#resume(tag);
    }
    await this.down();
  }
}

/** A proxy to `target` (a postgres URL, or a host and port), listening on 127.0.0.1 (tag 'default'). */
export async function startTcpProxy(target: ProxyTarget, options: TcpProxyOptions = {}): Promise<TcpProxy> {
  const url = typeof target === 'string' ? new URL(target) : undefined;
  const dest =
    typeof target === 'string'
      ? { host: (url as URL).hostname, port: Number((url as URL).port || 5432) }
      : { host: target.host ?? '127.0.0.1', port: target.port };
  const proxy = new ProxyServer(dest, options);
  proxy.port = await proxy.listen('default');
  proxy.url = url
    ? Object.assign(url, { hostname: '127.0.0.1', port: String(proxy.port) }).toString()
    : `postgres://127.0.0.1:${proxy.port}`;
  return proxy;
}
