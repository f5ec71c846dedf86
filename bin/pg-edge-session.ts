#!/usr/bin/env node
// The library's CLI (plain node, from the installed package): prints the migration SQL for a migration
// tool you own (everything it prints comes from migrationSql(), the same embedded list migrate() runs), and
// runs the WebSocket proxy that lets Neon's driver reach a local PostgreSQL in development (ws-proxy.ts).
import { parseArgs } from 'node:util';
import { migrationSql, migrationTags } from '../src/db/migration-sql.ts';
import { startWsProxy } from './ws-proxy.ts';

const DEFAULT_PROXY_PORT = 5433;
const HELP = `pg-edge-session — SQL of the session tables' migrations; a local WebSocket proxy for Neon's driver

Usage:
  pg-edge-session sql [--schema NAME] [--prefix PREFIX] [--mode all|drizzle-kit] [--after TAG]
  pg-edge-session tags
  pg-edge-session ws-proxy [--port PORT] [--host ADDRESS]

sql    Prints what migrate() runs, for any schema name and table prefix, separated by
       "--> statement-breakpoint" (drizzle-kit's separator), ending with the migration tags recorded
       in <schema>.<prefix>session_migrations (so migrate() then has nothing to do).
         --schema   schema name (default public)
         --prefix   table prefix (default empty)
         --mode     all (default): tables included; drizzle-kit: without the tables, columns and indexes
                    drizzle-kit generates from createSessionTables() (for \`drizzle-kit generate --custom\`)
         --after    only the migrations after this tag (an upgrade)
tags   Lists the migration tags, oldest first.
ws-proxy
       Local development only: a WebSocket-to-TCP proxy in front of a local PostgreSQL, what Neon's own
       proxy does in front of Neon, so that Neon's driver (pg-edge-session/neon, e.g. under wrangler dev)
       reaches it. Give the app and the Durable Object wsProxy "127.0.0.1:PORT/v2" (NEON_WS_PROXY in
       .dev.vars). Only loopback databases (127.0.0.1, localhost, [::1]) are proxied. Ctrl-C stops it.
         --port     port to listen on (default ${DEFAULT_PROXY_PORT}; 0: any free port)
         --host     address to listen on (default 127.0.0.1)
`;

async function wsProxy(port: string | undefined, host: string | undefined): Promise<void> {
  const p = port === undefined ? DEFAULT_PROXY_PORT : Number(port);
  if (!/^\d+$/.test(port ?? '0') || !Number.isInteger(p) || p < 0 || p > 65535) {
    throw new Error(`--port: expected a port number (0-65535), got ${JSON.stringify(port)}`);
  }
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let proxy: Awaited<ReturnType<typeof startWsProxy>>;
  try {
    proxy = await startWsProxy({ port: p, ...(host === undefined ? {} : { host }), log });
  } catch (e) {
    throw new Error(`ws-proxy: cannot listen on ${host ?? '127.0.0.1'}:${p}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const at = `${host ?? '127.0.0.1'}:${proxy.port}`;
  process.stdout.write(
    `ws-proxy listening on ws://${at}/v2?address=HOST:PORT (loopback databases only)\n` +
      `  wrangler dev (.dev.vars):   NEON_WS_PROXY="${at}/v2"\n` +
      `  neonSessions / neonSessionMiddleware:   wsProxy: '${at}/v2'\n`,
  );
  const stop = (signal: string) => {
    process.stdout.write(`ws-proxy: ${signal}, closing\n`);
    proxy.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

async function main(argv: string[]): Promise<number | undefined> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      schema: { type: 'string' },
      prefix: { type: 'string' },
      mode: { type: 'string' },
      after: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (rest.length > 0) throw new Error(`unexpected argument ${JSON.stringify(rest[0])}`);
  if (command === 'tags') {
    process.stdout.write(`${migrationTags().join('\n')}\n`);
    return 0;
  }
  if (command === 'ws-proxy') {
    await wsProxy(values.port, values.host);
    return undefined; // runs until SIGINT or SIGTERM
  }
  if (command !== 'sql') throw new Error(`unknown command ${JSON.stringify(command)} (try --help)`);
  const mode = values.mode ?? 'all';
  if (mode !== 'all' && mode !== 'drizzle-kit') throw new Error(`--mode: expected all or drizzle-kit, got ${JSON.stringify(mode)}`);
  process.stdout.write(
    migrationSql({
      mode,
      ...(values.schema === undefined ? {} : { schemaName: values.schema }),
      ...(values.prefix === undefined ? {} : { tablePrefix: values.prefix }),
      ...(values.after === undefined ? {} : { after: values.after }),
    }),
  );
  return 0;
}

try {
  const code = await main(process.argv.slice(2));
  if (code !== undefined) process.exitCode = code;
} catch (e) {
  process.stderr.write(`pg-edge-session: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 2;
}
