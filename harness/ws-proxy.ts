// A WebSocket-to-TCP proxy, what Neon's wsproxy does in front of PostgreSQL: lets the
// @neondatabase/serverless driver (in Node or inside workerd) reach a plain local PostgreSQL.
// Clients connect to ws://127.0.0.1:PORT/v2?address=HOST:PORT; only loopback targets are allowed.
import { connect } from 'node:net';
import { WebSocketServer } from 'ws';

export interface WsProxy {
  port: number;
  /** Closes every proxied connection (the clients see their sockets drop), keeps listening. */
  dropAll(): void;
  close(): Promise<void>;
}

export async function startWsProxy(port = 0): Promise<WsProxy> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const sockets = new Set<ReturnType<typeof connect>>();
  wss.on('connection', (ws, req) => {
    const address = new URL(req.url ?? '/', 'http://x').searchParams.get('address') ?? '';
    const m = /^(127\.0\.0\.1|localhost|\[::1\]):(\d+)$/.exec(address);
    if (!m) {
      ws.close(1008, 'only loopback targets');
      return;
    }
    const tcp = connect({ host: m[1] === 'localhost' ? '127.0.0.1' : (m[1] as string).replace(/[[\]]/g, ''), port: Number(m[2]) });
    tcp.setNoDelay(true);
    sockets.add(tcp);
    const pending: Buffer[] = [];
    let open = false;
    tcp.on('connect', () => {
      open = true;
      for (const b of pending) tcp.write(b);
      pending.length = 0;
    });
    ws.on('message', (data: Buffer) => {
      if (open) tcp.write(data);
      else pending.push(data);
    });
    tcp.on('data', (d) => {
      if (ws.readyState === ws.OPEN) ws.send(d);
    });
    const end = () => {
      sockets.delete(tcp);
      tcp.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.terminate();
    };
    tcp.on('close', end);
    tcp.on('error', end);
    ws.on('close', end);
    ws.on('error', end);
  });
  const addr = wss.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    dropAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  };
}
