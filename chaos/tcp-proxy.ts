// A TCP proxy between every chaos process and PostgreSQL that can misbehave on purpose. Each process gets
// its own listening port (a tag), so a fault can hit everyone or one process:
//   pause(ms, tag?, direction?) — stop forwarding (connections stay open, bytes wait; new connections are
//                     accepted but not forwarded either) in both directions, or only the answers back to the
//                     clients ('responses': their statements run, the results arrive late); resumes after ms.
//   cut(tag?)       — destroy the proxied connections at once (clients see their sockets drop).
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';

export interface TcpProxy {
  /** Port of the default listener (tag 'default'). */
  port: number;
  /** Opens another listening port whose connections carry `tag`. */
  listen(tag: string): Promise<number>;
  /** Connections currently proxied (of one tag, or all). */
  connections(tag?: string): number;
  /** Stops forwarding (for one tag, or all; both directions or only responses) for `ms`; resolves when it resumed. */
  pause(ms: number, tag?: string, direction?: 'both' | 'responses'): Promise<void>;
  /** Destroys the proxied connections (of one tag, or all); returns how many. */
  cut(tag?: string): number;
  close(): Promise<void>;
}

interface Pair {
  tag: string;
  client: Socket;
  upstream: Socket;
}

const ALL = '*';

export async function startTcpProxy(options: { targetPort: number; targetHost?: string }): Promise<TcpProxy> {
  const host = options.targetHost ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  const servers: Server[] = [];
  /** Paused tags ('*': everyone) → direction and when they resume. */
  const paused = new Map<string, { direction: 'both' | 'responses'; timer: ReturnType<typeof setTimeout>; waiters: (() => void)[] }>();
  /** Whether reading from this side of the pair is held: the upstream side carries responses. */
  const isPaused = (tag: string, side: 'client' | 'upstream') => {
    for (const key of [ALL, tag]) {
      const e = paused.get(key);
      if (e !== undefined && (e.direction === 'both' || side === 'upstream')) return true;
    }
    return false;
  };
  const matches = (p: Pair, tag: string) => tag === ALL || p.tag === tag;
  const apply = (p: Pair) => {
    for (const side of ['client', 'upstream'] as const) {
      if (isPaused(p.tag, side)) p[side].pause();
      else p[side].resume();
    }
  };

  const forward = (pair: Pair, side: 'client' | 'upstream') => {
    const from = pair[side];
    const to = side === 'client' ? pair.upstream : pair.client;
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (!isPaused(pair.tag, side)) from.resume();
        });
      }
    });
    from.on('end', () => to.end());
  };

  const listen = async (tag: string, port = 0): Promise<number> => {
    const server = createServer((client) => {
      client.setNoDelay(true);
      const upstream = tcpConnect({ host, port: options.targetPort });
      upstream.setNoDelay(true);
      const pair: Pair = { tag, client, upstream };
      pairs.add(pair);
      const destroy = () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', destroy);
      upstream.on('error', destroy);
      client.on('close', destroy);
      upstream.on('close', destroy);
      forward(pair, 'client');
      forward(pair, 'upstream');
      apply(pair);
    });
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    servers.push(server);
    const address = server.address();
    return typeof address === 'object' && address ? address.port : 0;
  };

  const resume = (tag: string) => {
    const entry = paused.get(tag);
    paused.delete(tag);
    for (const p of pairs) apply(p);
    for (const w of entry?.waiters ?? []) w();
  };

  const port = await listen('default');
  return {
    port,
    listen: (tag: string) => listen(tag),
    connections(tag = ALL) {
      let n = 0;
      for (const p of pairs) if (matches(p, tag)) n++;
      return n;
    },
    pause(ms: number, tag = ALL, direction: 'both' | 'responses' = 'both') {
      const entry = paused.get(tag);
      if (entry !== undefined) clearTimeout(entry.timer);
      const waiters = entry?.waiters ?? [];
      paused.set(tag, { direction, timer: setTimeout(() => resume(tag), ms), waiters });
      for (const p of pairs) if (matches(p, tag)) apply(p);
      return new Promise<void>((r) => waiters.push(r));
    },
    cut(tag = ALL) {
      let n = 0;
      for (const p of [...pairs]) {
        if (!matches(p, tag)) continue;
        n++;
        pairs.delete(p);
        p.client.destroy();
        p.upstream.destroy();
      }
      return n;
    },
    async close() {
      for (const [tag, e] of [...paused]) {
        clearTimeout(e.timer);
        resume(tag);
      }
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
