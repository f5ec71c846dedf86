/**
 * Host names the library treats specially, each checked in one place: loopback (only this machine can
 * reach it) and Neon's pooled endpoint. Edge-safe: no I/O.
 */

/**
 * 127.0.0.0/8, ::1 (bracketed as in a URL's `hostname`, bare, or written out) and localhost: addresses
 * only this machine can reach.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::1' || h === '0:0:0:0:0:0:0:1';
}

/**
 * Neon's pooled endpoint (a host with `-pooler`): PgBouncer in transaction mode, where LISTEN does not
 * work, so the sync host refuses it.
 */
export function isPoolerHost(host: string): boolean {
  return host.includes('-pooler');
}
