/**
 * Where the session middleware takes the client IP it records at sign-in. Never from a header a client
 * can set, unless the app says which proxies in front of it are trusted to set it. Edge-safe.
 */
import type { Context } from 'hono';
import { cfLocation, type DeviceLocation, headerCountry, normalizeIp, parseCidr } from '../core/device.ts';
import { ConfigError } from '../core/errors.ts';

/**
 * - `'platform'` (default): the address the runtime itself saw, which a client cannot forge — on
 *   Cloudflare Workers the `CF-Connecting-IP` header (Cloudflare's edge sets it and overwrites any the
 *   client sent), on Node (`@hono/node-server`) the socket's remote address, on Bun the server's
 *   `requestIP`, on Deno the connection's `remoteAddr`; none elsewhere. Behind your own proxy or load
 *   balancer this is the proxy's address: use `trustedProxies`.
 * - `{ trustedProxies: ['10.0.0.0/8', '2001:db8::/32', '203.0.113.7'] }`: `X-Forwarded-For`, but only the
 *   part your proxies wrote — read from the right, starting at the platform's address, skipping every
 *   address in the list; the first one outside it is the client. A request that did not come through a
 *   listed proxy is taken at its platform address, whatever its header says.
 * - `'none'`: record no IP.
 * - a function `(c) => string | undefined`: your own rule (it must return an IP address or undefined).
 *
 * Whatever the source gives, sign-in never fails because of it: an address is normalized (`normalizeIp`
 * in device.ts: an IPv6 zone such as `%eth0` dropped, IPv4-mapped IPv6 as IPv4), and a value that is not
 * an address (`CF-Connecting-IP: garbage`, a list, a port) records no IP and is reported (see
 * `resolveClientIp`).
 *
 * The same option says where the client's location comes from (`resolveClientLocation`): on Workers,
 * Cloudflare's `request.cf` (country, region, city, colo; Cloudflare sets it, a client cannot); with
 * `trustedProxies`, the country in `CF-IPCountry` when the request came through a listed proxy (which must
 * set or strip that header: Cloudflare in front of it does); otherwise none, and never with `'none'`.
 */
export type ClientIpOption = 'platform' | 'none' | { trustedProxies: string[] } | ((c: Context) => string | undefined);

const isWorkers = typeof navigator !== 'undefined' && (navigator as { userAgent?: string }).userAgent === 'Cloudflare-Workers';

/** The address the runtime saw (see ClientIpOption), or undefined. */
export function platformIp(c: Context): string | undefined {
  if (isWorkers) return c.req.header('cf-connecting-ip') || undefined;
  const env = c.env as
    | {
        incoming?: { socket?: { remoteAddress?: unknown } };
        requestIP?: (req: Request) => { address?: unknown } | null;
        remoteAddr?: { hostname?: unknown };
      }
    | undefined;
  let ip: unknown;
  try {
    ip = env?.incoming?.socket?.remoteAddress ?? env?.requestIP?.(c.req.raw)?.address ?? env?.remoteAddr?.hostname;
  } catch {
    return undefined;
  }
  return typeof ip === 'string' && ip !== '' ? ip : undefined;
}

/**
 * Validates the option once and returns the function the middleware calls at sign-in: a normalized
 * address or undefined, never a malformed value. `onMalformed` hears of each value that was given but is
 * not an address (undefined is then returned).
 */
export function resolveClientIp(
  option: unknown,
  onMalformed: (value: unknown, c: Context) => void = () => {},
): (c: Context) => string | undefined {
  const checked = (value: unknown, c: Context): string | undefined => {
    if (value === undefined || value === null || value === '') return undefined;
    const ip = typeof value === 'string' ? normalizeIp(value) : undefined;
    if (ip === undefined) onMalformed(value, c);
    return ip;
  };
  if (option === undefined || option === 'platform') return (c) => checked(platformIp(c), c);
  if (option === 'none') return () => undefined;
  if (typeof option === 'function') {
    const fn = option as (c: Context) => unknown;
    return (c) => checked(fn(c), c);
  }
  if (option !== null && typeof option === 'object' && !Array.isArray(option)) {
    const keys = Object.keys(option);
    const unknown = keys.find((k) => k !== 'trustedProxies');
    if (unknown !== undefined) throw new ConfigError(`clientIp.${unknown}`, 'unknown option');
    const list = (option as { trustedProxies?: unknown }).trustedProxies;
    if (!Array.isArray(list) || list.length === 0) {
      throw new ConfigError('clientIp.trustedProxies', 'expected a non-empty array of IP addresses or CIDR ranges');
    }
    const matchers = list.map((entry, i) => {
      if (typeof entry !== 'string') throw new ConfigError(`clientIp.trustedProxies[${i}]`, 'expected a string');
      try {
        return parseCidr(entry);
      } catch (e) {
        throw new ConfigError(`clientIp.trustedProxies[${i}]`, (e as Error).message);
      }
    });
    const trusted = (ip: string) => matchers.some((m) => m(ip));
    return (c) => forwardedClient(checked(platformIp(c), c), c.req.header('x-forwarded-for'), trusted, (hop) => onMalformed(hop, c));
  }
  throw new ConfigError('clientIp', 'expected "platform", "none", { trustedProxies: [...] } or a function (c) => string | undefined');
}

/**
 * The client address from the platform's address and X-Forwarded-For: the rightmost address that is not a
 * trusted proxy, walking left only while each hop is trusted. Hops are normalized as `normalizeIp` does.
 * Undefined when a hop is malformed (`onMalformed` hears of it).
 */
export function forwardedClient(
  peer: string | undefined,
  header: string | undefined,
  trusted: (ip: string) => boolean,
  onMalformed: (hop: string) => void = () => {},
): string | undefined {
  if (peer === undefined) return undefined;
  let client = peer;
  if (!trusted(client) || header === undefined) return client;
  const hops = header.split(',').map((h) => h.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalizeIp(hops[i] as string);
    if (hop === undefined) {
      onMalformed(hops[i] as string);
      return undefined;
    }
    client = hop;
    if (!trusted(hop)) return hop;
  }
  return client;
}

/**
 * Validates the option (as `resolveClientIp` does; call that first for its errors) and returns the function
 * the middleware calls at sign-in: the client's location (see ClientIpOption), or undefined. Never from a
 * header a client could set: `CF-IPCountry` counts only on a request whose platform address is a trusted
 * proxy's. A value that is not a two-letter code is dropped.
 */
export function resolveClientLocation(option: unknown): (c: Context) => DeviceLocation | undefined {
  if (option === 'none') return () => undefined;
  if (isWorkers) return (c) => cfLocation((c.req.raw as { cf?: unknown }).cf);
  const list = option !== null && typeof option === 'object' ? (option as { trustedProxies?: unknown }).trustedProxies : undefined;
  if (!Array.isArray(list)) return () => undefined;
  const matchers = list.map((entry) => parseCidr(entry as string));
  return (c) => {
    const peer = platformIp(c);
    const ip = peer === undefined ? undefined : normalizeIp(peer);
    if (ip === undefined || !matchers.some((m) => m(ip))) return undefined;
    const country = headerCountry(c.req.header('cf-ipcountry'));
    return country === undefined ? undefined : { country };
  };
}
