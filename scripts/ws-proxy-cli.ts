// The WebSocket-to-TCP proxy (scripts/ws-proxy.ts) as a command, for `wrangler dev` and other manual runs
// of Neon's driver against a local PostgreSQL.
//
//   npx tsx scripts/ws-proxy-cli.ts [port]      (default 5433; Ctrl-C stops it)
//
// Clients connect to ws://127.0.0.1:PORT/v2?address=HOST:PORT; only loopback targets are proxied.
import { createServer } from 'node:net';
import { startWsProxy } from './ws-proxy.ts';

const DEFAULT_PORT = 5433;
const USAGE = `Usage: npx tsx scripts/ws-proxy-cli.ts [port]

A WebSocket-to-TCP proxy in front of a local PostgreSQL, what Neon's wsproxy does in front of Neon: lets
@neondatabase/serverless (in Node or in workerd / wrangler dev) reach a plain PostgreSQL.
Listens on 127.0.0.1:[port] (default ${DEFAULT_PORT}); clients connect to ws://127.0.0.1:PORT/v2?address=HOST:PORT,
and only loopback targets (127.0.0.1, localhost, [::1]) are accepted.
`;

const arg = process.argv[2];
if (arg === '--help' || arg === '-h') {
  process.stdout.write(USAGE);
  process.exit(0);
}
const port = arg === undefined ? DEFAULT_PORT : Number(arg);
if (!Number.isInteger(port) || port < 0 || port > 65535 || process.argv.length > 3) {
  process.stderr.write(`ws-proxy: expected one port number (0-65535), got ${JSON.stringify(process.argv.slice(2).join(' '))}\n\n${USAGE}`);
  process.exit(2);
}

// Fail with a clear message when the port is taken (the proxy itself would only throw an 'error' event).
await new Promise<void>((resolve) => {
  const probe = createServer();
  probe.once('error', (e: NodeJS.ErrnoException) => {
    process.stderr.write(`ws-proxy: cannot listen on 127.0.0.1:${port}: ${e.code ?? e.message}\n`);
    process.exit(1);
  });
  probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
});

const proxy = await startWsProxy(port);
process.stdout.write(
  `ws-proxy listening on ws://127.0.0.1:${proxy.port}/v2?address=HOST:PORT (loopback targets only)\n` +
    `  example worker (.dev.vars):   NEON_WS_PROXY=127.0.0.1:${proxy.port}/v2\n` +
    `  sync worker (neon driver):    --driver neon --neon-ws-proxy 127.0.0.1:${proxy.port}/v2\n`,
);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`ws-proxy: ${signal}, closing\n`);
  proxy.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGINT', () => stop('SIGINT'));
process.once('SIGTERM', () => stop('SIGTERM'));
