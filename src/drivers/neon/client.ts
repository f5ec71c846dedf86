/**
 * A Neon connection with the library's settings, and what a failed connect says. Loads Neon's driver.
 */
import { Client } from '@neondatabase/serverless';
import { describeError, findErrorCode } from '../../core/errors.ts';
import { isLoopbackHost } from '../../internal/hosts.ts';
import type { NeonConnectionSettings } from './settings.ts';

/** A Neon `Client` (not connected) with `settings` applied to it alone. */
export function neonClient(connectionString: string, applicationName: string, settings: NeonConnectionSettings): Client {
  const client = new Client({ connectionString, application_name: applicationName } as never);
  Object.assign((client as unknown as { neonConfig: NeonConnectionSettings }).neonConfig, settings);
  return client;
}

/** Where Neon's driver cannot go without a WebSocket proxy: this machine, or the Docker host. */
function isLocalHost(host: string): boolean {
  return isLoopbackHost(host) || /^(0\.0\.0\.0|host\.docker\.internal)$/i.test(host);
}

/**
 * A connection that could not be made, with what is likely wrong. In workerd, Neon's driver rejects with
 * the WebSocket's `ErrorEvent` ("Network connection lost.", no code): the message here says "connection
 * to HOST:PORT failed" (so the store classifies it DATABASE_UNAVAILABLE) and names the likely cause: a local
 * PostgreSQL without the WebSocket proxy, a proxy that is not running, or an endpoint that is wrong or
 * down. An error PostgreSQL itself answered (a SQLSTATE: wrong password, no such database) is kept as is.
 */
export function connectFailure(e: unknown, connectionString: string, proxy: string | undefined): unknown {
  if (/^[0-9A-Z]{5}$/.test(findErrorCode(e) ?? '')) return e;
  let host = '';
  let port = '5432';
  try {
    const u = new URL(connectionString);
    host = u.hostname;
    port = u.port || port;
  } catch {
    // Neon's driver reported the URL; the hint then names no host.
  }
  const target = host === '' ? 'the database' : `${host}:${port}`;
  const hint =
    proxy !== undefined
      ? `is the WebSocket proxy at ${proxy} running (npx pg-edge-session ws-proxy) and PostgreSQL up at ${target}?`
      : isLocalHost(host)
        ? "Neon's driver reaches a local PostgreSQL only through a WebSocket proxy: run npx pg-edge-session ws-proxy and set wsProxy (NEON_WS_PROXY in .dev.vars) to the address it prints"
        : `is ${host} a Neon endpoint (the pooled one), reachable from here?`;
  const cause = e instanceof Error || e === null || typeof e !== 'object' ? e : ((e as { error?: unknown }).error ?? e);
  const error = new Error(`connection to ${target} failed: ${describeError(cause)} (hint: ${hint})`, { cause });
  error.name = 'NeonConnectError';
  return error;
}
