// A TCP proxy that stands in for distance: each chunk is forwarded `delayMs` after it arrived, in order, in
// each direction (a round trip costs 2 × delayMs), and client→server flights are counted (a flight: the
// client sends after it last heard from the server, or first). Used by bench/sections/workers.ts (between
// workerd and the WebSocket proxy, or workerd and PostgreSQL) and by test/neon-close.test.ts, which holds
// connections that sent PostgreSQL's Terminate open until released.
import { createServer, type Server, type Socket } from 'node:net';

export interface DelayProxyOptions {
  /** Where to forward (loopback host, port). */
  host: string;
  port: number;
  /** One-way delay in ms; change it between measurements with `delayMs`. Default 0. */
  delayMs?: number;
  /**
   * 'hyperdrive': chunks before the server's first ReadyForQuery go through undelayed and uncounted: the
   * start-up that Hyperdrive answers in the Worker's own location from its pool, not across the distance.
   */
  model?: 'plain' | 'hyperdrive';
}

export interface DelayProxy {
  port: number;
  delayMs: number;
  /**
   * Client→server flights since the last `reset()`, not counting the closes: a flight that starts with
   * PostgreSQL's Terminate (raw, or alone in a WebSocket frame) or a WebSocket close frame is in `closeFlights`.
   */
  readonly flights: number;
  readonly closeFlights: number;
  /** Connections since the last `reset()`. */
  readonly connections: number;
  reset(): void;
  /** While true, a connection whose client sends Terminate ('X') is left open: neither side sees it until released. */
  holdTerminate: boolean;
  /** Connections held by `holdTerminate` now. */
  readonly held: number;
  release(): void;
  close(): Promise<void>;
}

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]);
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

/** A chunk that closes: Terminate ('X', length 4) raw or as the whole payload of a masked WebSocket frame, or a WebSocket close frame. */
function isClose(d: Buffer): boolean {
  if (d.length === 5) return d.equals(TERMINATE);
  if (d.length === 11 && d[0] === 0x82 && d[1] === 0x85) return ((d[6] as number) ^ (d[2] as number)) === 0x58;
  return d[0] === 0x88;
}

export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const held = new Set<() => void>();
  let flights = 0;
  let closeFlights = 0;
  let connections = 0;
  const state = { delayMs: options.delayMs ?? 0, holdTerminate: false };

  const server: Server = createServer((client) => {
    connections++;
    const upstream = new (client.constructor as typeof Socket)();
    sockets.add(client);
    sockets.add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let last: 'none' | 'up' | 'down' = 'none';
    let started = options.model !== 'hyperdrive';
    let holding = false;
    const pending: Buffer[] = [];
    let upAt = 0;
    let downAt = 0;
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    // Later chunks never overtake earlier ones: each is due no earlier than the one before it.
    const later = (at: number, fn: () => void) => {
      const wait = at - performance.now();
      if (wait <= 0.5) fn();
      else setTimeout(fn, wait);
    };
    client.on('data', (d: Buffer) => {
      if (started && last !== 'up') {
        if (isClose(d)) closeFlights++;
        else flights++;
      }
      last = 'up';
      if (state.holdTerminate && d.includes(TERMINATE)) {
        holding = true;
        const release = () => {
          holding = false;
          for (const b of pending.splice(0)) upstream.write(b);
          upstream.write(d);
        };
        held.add(release);
        return;
      }
      if (holding) {
        pending.push(d);
        return;
      }
      const delay = started ? state.delayMs : 0;
      upAt = Math.max(upAt, performance.now() + delay);
      later(upAt, () => upstream.write(d));
    });
    upstream.on('data', (d: Buffer) => {
      const delay = started ? state.delayMs : 0;
      if (!started && d.includes(READY_FOR_QUERY)) started = true;
      last = 'down';
      downAt = Math.max(downAt, performance.now() + delay);
      later(downAt, () => client.write(d));
    });
    const end = (from: Socket, to: Socket, at: () => number) => () => {
      if (holding && from === upstream) return;
      later(at() + (started ? state.delayMs : 0), () => to.end());
    };
    client.on(
      'end',
      end(client, upstream, () => upAt),
    );
    upstream.on(
      'end',
      end(upstream, client, () => downAt),
    );
    client.on('error', drop).on('close', () => later(upAt + state.delayMs, drop));
    upstream.on('error', drop).on('close', () => later(downAt + state.delayMs, drop));
    client.pause();
    upstream.connect(options.port, options.host, () => client.resume());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as { port: number }).port,
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(v: number) {
      state.delayMs = v;
    },
    get flights() {
      return flights;
    },
    get closeFlights() {
      return closeFlights;
    },
    get connections() {
      return connections;
    },
    reset() {
      flights = 0;
      closeFlights = 0;
      connections = 0;
    },
    get holdTerminate() {
      return state.holdTerminate;
    },
    set holdTerminate(v: boolean) {
      state.holdTerminate = v;
    },
    get held() {
      return held.size;
    },
    release() {
      for (const r of [...held]) {
        held.delete(r);
        r();
      }
    },
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
  };
}
