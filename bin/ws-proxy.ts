// `pg-edge-session ws-proxy`: a WebSocket-to-TCP proxy in front of a local PostgreSQL, what Neon's own
// wsproxy does in front of Neon, so that Neon's driver (`pg-edge-session/neon`, in `wrangler dev`'s workerd
// or in Node) reaches a plain PostgreSQL during local development. Clients connect to
// ws://HOST:PORT/v2?address=DBHOST:DBPORT (what `wsProxy: 'HOST:PORT/v2'` makes the driver send) and only
// loopback targets are proxied, so the proxy is no relay into anything else.
//
// Node built-ins only (node:http, node:net, node:crypto) and the small part of RFC 6455 a proxy needs:
// the opening handshake, masked client frames (fragmented or not, any data opcode: their payload is the
// byte stream), ping/pong and close; server frames are unmasked binary. The library gains no dependency.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface WsProxyOptions {
  /** Port to listen on (0: any free one). */
  port: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** One line per connection that could not be made (the target refused, a target not on loopback). */
  log?: (line: string) => void;
}

export interface RunningWsProxy {
  port: number;
  close(): Promise<void>;
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
/** A client frame larger than this closes the connection (1009): Neon's driver sends PostgreSQL messages. */
const MAX_FRAME = 64 * 1024 * 1024;
const LOOPBACK_TARGET = /^(127\.0\.0\.1|localhost|\[::1\]):(\d{1,5})$/;

/** Where a client asked to go, when it is a loopback address: [host, port]. */
function target(req: IncomingMessage): [string, number] | undefined {
  const address = new URL(req.url ?? '/', 'http://proxy').searchParams.get('address') ?? '';
  const m = LOOPBACK_TARGET.exec(address);
  if (m === null) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  return [m[1] === 'localhost' ? '127.0.0.1' : (m[1] as string).replace(/[[\]]/g, ''), port];
}

/** A server frame: FIN, the opcode, no mask. */
function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.alloc(2) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = 0x80 | opcode;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

function closeFrame(code: number, reason: string): Buffer {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason));
  body.writeUInt16BE(code, 0);
  body.write(reason, 2);
  return frame(0x8, body);
}

/** Proxies one upgraded connection: client frames' payloads to `tcp`, `tcp`'s bytes back as binary frames. */
function pipe(socket: Socket, head: Buffer, tcp: Socket, onRefused: (e: Error) => void): void {
  let buf = head;
  let connected = false;
  let closing = false;
  const early: Buffer[] = [];
  const close = (code: number, reason: string) => {
    if (closing) return;
    closing = true;
    if (socket.writable) socket.end(closeFrame(code, reason));
    tcp.destroy();
  };
  tcp.setNoDelay(true);
  socket.setNoDelay(true);
  tcp.on('connect', () => {
    connected = true;
    for (const b of early) tcp.write(b);
    early.length = 0;
  });
  tcp.on('data', (d: Buffer) => {
    if (socket.writable) socket.write(frame(0x2, d));
  });
  tcp.on('error', (e) => {
    if (!connected) onRefused(e);
    close(1011, connected ? 'database connection failed' : 'database unreachable');
  });
  tcp.on('close', () => close(1000, ''));
  socket.on('error', () => tcp.destroy());
  socket.on('close', () => tcp.destroy());
  const feed = (d: Buffer) => {
    buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
    while (!closing) {
      if (buf.length < 2) return;
      const b0 = buf[0] as number;
      const b1 = buf[1] as number;
      const opcode = b0 & 0x0f;
      if ((b1 & 0x80) === 0) return close(1002, 'client frames must be masked');
      let len = b1 & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        const big = buf.readBigUInt64BE(2);
        if (big > BigInt(MAX_FRAME)) return close(1009, 'frame too large');
        len = Number(big);
        at = 10;
      }
      if (len > MAX_FRAME) return close(1009, 'frame too large');
      if (buf.length < at + 4 + len) return;
      const mask = buf.subarray(at, at + 4);
      const payload = Buffer.from(buf.subarray(at + 4, at + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
      buf = buf.subarray(at + 4 + len);
      if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) {
        if (connected) tcp.write(payload);
        else early.push(payload);
      } else if (opcode === 0x8) {
        close(1000, '');
      } else if (opcode === 0x9) {
        socket.write(frame(0xa, payload));
      } else if (opcode !== 0xa) {
        return close(1002, `unknown opcode ${opcode}`);
      }
    }
  };
  socket.on('data', feed);
  // Frames the client sent right behind its handshake arrive with it.
  if (buf.length > 0) feed(Buffer.alloc(0));
}

export function startWsProxy(options: WsProxyOptions): Promise<RunningWsProxy> {
  const log = options.log ?? (() => {});
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
    res.end('pg-edge-session ws-proxy: connect with a WebSocket to /v2?address=HOST:PORT\n');
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const key = req.headers['sec-websocket-key'];
    if (req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string' || req.headers['sec-websocket-version'] !== '13') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
      return;
    }
    const to = target(req);
    if (to === undefined) {
      log(`ws-proxy: refused ${req.url}: only loopback targets (127.0.0.1, localhost, [::1]) are proxied`);
      socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n');
      return;
    }
    const accept = createHash('sha1').update(`${key}${GUID}`).digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    const tcp = connect({ host: to[0], port: to[1] });
    sockets.add(tcp);
    tcp.on('close', () => sockets.delete(tcp));
    pipe(socket, head, tcp, (e) =>
      log(`ws-proxy: cannot reach PostgreSQL at ${to[0]}:${to[1]}: ${(e as NodeJS.ErrnoException).code ?? e.message}`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      const addr = server.address();
      resolve({
        port: typeof addr === 'object' && addr !== null ? addr.port : options.port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
