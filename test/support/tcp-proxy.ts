// A TCP proxy in front of PostgreSQL for tests: counts the bytes that cross it (what a Neon compute would
// see as traffic), and can be cut (every connection closed, new ones refused) and restored.
import { createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** postgres URL through the proxy (same user, password and database as `target`). */
  url: string;
  /** Bytes from clients to the server and back, since the start. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Connections open now, and opened since the start. */
  readonly open: number;
  readonly opened: number;
  /** Closes every connection and refuses new ones (connection refused) until `up()`. */
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || 5432);
  const sockets = new Set<Socket>();
  const clients = new Set<Socket>();
  let bytesUp = 0;
  let bytesDown = 0;
  let opened = 0;
  let server: Server | undefined;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        opened++;
        const upstream = new (client.constructor as typeof Socket)();
        sockets.add(client);
        sockets.add(upstream);
        clients.add(client);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
          clients.delete(client);
        };
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
        client.on('data', (d: Buffer) => {
          bytesUp += d.length;
          upstream.write(d);
        });
        upstream.on('data', (d: Buffer) => {
          bytesDown += d.length;
          client.write(d);
        });
        client.pause();
        upstream.connect(targetPort, target.hostname, () => client.resume());
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as { port: number }).port;
        server = s;
        resolve();
      });
    });
  await listen();
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);

  const stop = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    clients.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  return {
    port,
    url: url.toString(),
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    get open() {
      return clients.size;
    },
    get opened() {
      return opened;
    },
    down: stop,
    up: async () => {
      if (!server) await listen();
    },
    close: stop,
  };
}
