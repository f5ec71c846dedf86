/**
 * Device metadata recorded when a session is created: the raw user agent (bounded), a short human label
 * derived from it ("Firefox on Linux"), the client IP from a source the app declares, and an optional
 * label of the app's own. Pure functions, edge-safe.
 */
import { InvalidArgumentError } from './errors.ts';

/** What `createSession(..., { device })` records. Every field is optional. */
export interface DeviceInfo {
  /** The request's User-Agent, stored as given up to MAX_USER_AGENT_LENGTH characters (cut beyond). */
  userAgent?: string | undefined;
  /**
   * The client's IP address (v4 or v6; an IPv6 zone such as `%eth0` is dropped). Anything that is not an
   * IP address is refused.
   */
  ip?: string | undefined;
  /** A label of the app's own ("Work laptop", "API key #3"), at most MAX_DEVICE_LABEL_LENGTH characters. */
  label?: string | undefined;
  /**
   * Where the client is, as the platform or a trusted proxy says (the middleware fills it from Cloudflare's
   * `request.cf`, or a trusted proxy's `CF-IPCountry`: see `clientIp`). Never looked up.
   */
  location?: DeviceLocation | undefined;
}

/**
 * A client's location: `country` an ISO 3166-1 alpha-2 code ("DE"; Cloudflare's "XX" and "T1" too),
 * `region`, `city` and `colo` (the Cloudflare data center, "FRA") at most MAX_LOCATION_FIELD_LENGTH
 * characters each. Every field is optional.
 */
export interface DeviceLocation {
  country?: string | undefined;
  region?: string | undefined;
  city?: string | undefined;
  colo?: string | undefined;
}

export const MAX_LOCATION_FIELD_LENGTH = 100;
const LOCATION_FIELDS = ['country', 'region', 'city', 'colo'] as const;

/** What the library stores and lists: `DeviceInfo` plus the label derived from the user agent. */
export interface StoredDevice {
  userAgent: string | null;
  /** "Firefox on Linux", "Safari on iPhone", "curl"; null without a user agent. See `describeUserAgent`. */
  device: string | null;
  ip: string | null;
  label: string | null;
  /** Only the fields given; null when none was. */
  location: DeviceLocation | null;
}

export const MAX_USER_AGENT_LENGTH = 512;
/**
 * How much of a User-Agent `describeUserAgent` reads: a browser names itself after the 512 stored characters
 * when extensions or frameworks pad the header, and real headers stay far below this. Every rule below runs
 * in time linear in its input, so this bounds the work a crafted header can cause.
 */
export const MAX_USER_AGENT_LABEL_INPUT = 16 * 1024;
export const MAX_DEVICE_LABEL_LENGTH = 128;

/**
 * Browsers and clients, most specific first (Edge and Opera also say "Chrome", Chrome also says "Safari").
 * A small documented table rather than a parser dependency: the label is for people reading a device
 * list, and an unknown agent still gets a sensible "<OS>" or "Unknown browser" label.
 */
const BROWSERS: [RegExp | ((ua: string) => boolean), string][] = [
  [/\bEdg(?:e|A|iOS)?\//, 'Edge'],
  [/\bOPR\/|\bOpera\b/, 'Opera'],
  [/\bSamsungBrowser\//, 'Samsung Internet'],
  [/\bVivaldi\//, 'Vivaldi'],
  [/\bYaBrowser\//, 'Yandex Browser'],
  [/\bFirefox\/|\bFxiOS\//, 'Firefox'],
  [/\bCriOS\/|\bChrome\/|\bChromium\/|HeadlessChrome\//, 'Chrome'],
  [isSafari, 'Safari'],
  [/^curl\//, 'curl'],
  [/^Wget\//i, 'Wget'],
  [/^PostmanRuntime\//, 'Postman'],
  [/^okhttp\//, 'OkHttp'],
  [/^python-requests\/|^python-httpx\/|^aiohttp\//, 'Python'],
  [/^node-fetch\/|^undici\b|^node\b/i, 'Node.js'],
  [/^Go-http-client\//, 'Go'],
];

const SYSTEMS: [RegExp, string][] = [
  [/\biPhone\b/, 'iPhone'],
  [/\biPad\b/, 'iPad'],
  [/\bAndroid\b/, 'Android'],
  [/\bCrOS\b/, 'ChromeOS'],
  [/\bWindows\b/, 'Windows'],
  [/\bMac OS X\b|\bMacintosh\b/, 'macOS'],
  [/\bLinux\b|\bX11\b/, 'Linux'],
];

/**
 * Safari, in linear time: "Version/x ... Safari/", "Mobile/x Safari/", or WebKit's "(KHTML, like Gecko)"
 * after "AppleWebKit/" with no "Chrome" behind it. As one regex (`.*` around a negative lookahead) it
 * took cubic time on a crafted header of repeated fragments, harmless at 512 characters but not at
 * MAX_USER_AGENT_LABEL_INPUT.
 */
function isSafari(ua: string): boolean {
  const version = /\bVersion\/[\d.]+/.exec(ua);
  if (version !== null && /\bSafari\//.test(ua.slice(version.index + version[0].length))) return true;
  if (/\bMobile\/\w+ Safari\//.test(ua)) return true;
  const webkit = ua.indexOf('AppleWebKit/');
  const gecko = ua.lastIndexOf('(KHTML, like Gecko)');
  return webkit !== -1 && gecko > webkit && !ua.includes('Chrome', gecko);
}

/**
 * A short human label for a user agent: "<browser> on <system>", or the one that is known, or
 * "Unknown device". Table-driven (see BROWSERS and SYSTEMS), from the first MAX_USER_AGENT_LABEL_INPUT
 * characters; never throws.
 */
export function describeUserAgent(userAgent: string): string {
  const ua = userAgent.slice(0, MAX_USER_AGENT_LABEL_INPUT);
  const browser = BROWSERS.find(([rule]) => (typeof rule === 'function' ? rule(ua) : rule.test(ua)))?.[1];
  const system = SYSTEMS.find(([re]) => re.test(ua))?.[1];
  if (browser !== undefined && system !== undefined) return `${browser} on ${system}`;
  return browser ?? system ?? 'Unknown device';
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** True for a textual IPv4 or IPv6 address (no zone, no port, no brackets). */
export function isIpAddress(v: string): boolean {
  return IPV4.test(v) || ipv6Groups(v) !== undefined;
}

/**
 * An address as the library stores it, or undefined when `value` is not one: surrounding spaces trimmed,
 * an IPv6 zone (`fe80::1%eth0`, what Node reports for a link-local peer) dropped — it names an interface
 * of the receiving host, not the client — an IPv4-mapped IPv6 address written as IPv4, lower case.
 */
export function normalizeIp(value: string): string | undefined {
  let s = value.trim();
  const zone = s.indexOf('%');
  if (zone !== -1 && s.slice(0, zone).includes(':')) s = s.slice(0, zone);
  if (s.toLowerCase().startsWith('::ffff:') && IPV4.test(s.slice(7))) s = s.slice(7);
  return isIpAddress(s) ? s.toLowerCase() : undefined;
}

/** The eight 16-bit groups of a textual IPv6 address (an embedded dotted IPv4 tail allowed), or undefined. */
function ipv6Groups(v: string): number[] | undefined {
  if (v.length > 45 || !v.includes(':') || !/^[0-9A-Fa-f:.]+$/.test(v)) return undefined;
  let s = v;
  const v4 = /:((?:\d{1,3}\.){3}\d{1,3})$/.exec(s);
  if (v4 !== null) {
    if (!IPV4.test(v4[1] as string)) return undefined;
    const [a = 0, b = 0, c = 0, d = 0] = (v4[1] as string).split('.').map(Number);
    s = `${s.slice(0, v4.index)}:${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  } else if (s.includes('.')) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parse = (half: string): number[] | undefined => {
    if (half === '') return [];
    const out: number[] = [];
    for (const g of half.split(':')) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
      out.push(Number.parseInt(g, 16));
    }
    return out;
  };
  const left = parse(halves[0] as string);
  const right = halves.length === 2 ? parse(halves[1] as string) : [];
  if (left === undefined || right === undefined) return undefined;
  if (halves.length === 1) return left.length === 8 ? left : undefined;
  const fill = 8 - left.length - right.length;
  return fill >= 1 ? [...left, ...new Array<number>(fill).fill(0), ...right] : undefined;
}

/**
 * Checks and normalizes what a caller gives `createSession`: a user agent is labelled from the whole
 * header, then cut to its bound for storage; an IP must be an address (normalized by `normalizeIp`: zone
 * dropped, IPv4-mapped as IPv4); the label is bounded. Throws InvalidArgumentError naming the field, so a bad value writes nothing.
 */
export function prepareDevice(input: DeviceInfo | undefined): StoredDevice | null {
  if (input === undefined) return null;
  if (input === null || typeof input !== 'object')
    throw new InvalidArgumentError('device', 'expected an object { userAgent?, ip?, label? }');
  const text = (name: string, v: unknown, max: number, cut: boolean): string | null => {
    if (v === undefined || v === null || v === '') return null;
    if (typeof v !== 'string') throw new InvalidArgumentError(`device.${name}`, `expected a string, got ${typeof v}`);
    if (v.includes('\u0000') || !v.isWellFormed()) {
      throw new InvalidArgumentError(`device.${name}`, 'must be well-formed Unicode without NUL characters');
    }
    if (v.length > max && !cut) throw new InvalidArgumentError(`device.${name}`, `at most ${max} characters, got ${v.length}`);
    return v.slice(0, max);
  };
  const userAgent = text('userAgent', input.userAgent, MAX_USER_AGENT_LENGTH, true);
  // Labelled from the header as sent: its browser may be named past the stored characters.
  const device = userAgent === null ? null : describeUserAgent(input.userAgent as string);
  const rawIp = text('ip', input.ip, 64, false);
  const ip = rawIp === null ? null : normalizeIp(rawIp);
  if (ip === undefined) throw new InvalidArgumentError('device.ip', 'expected an IPv4 or IPv6 address');
  const label = text('label', input.label, MAX_DEVICE_LABEL_LENGTH, false);
  return { userAgent, device, ip, label, location: prepareLocation(input.location, text) };
}

function prepareLocation(
  input: unknown,
  text: (name: string, v: unknown, max: number, cut: boolean) => string | null,
): DeviceLocation | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidArgumentError('device.location', 'expected an object { country?, region?, city?, colo? }');
  }
  const unknown = Object.keys(input).find((k) => !(LOCATION_FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) throw new InvalidArgumentError(`device.location.${unknown}`, 'unknown field');
  const out: DeviceLocation = {};
  for (const field of LOCATION_FIELDS) {
    const v = text(`location.${field}`, (input as DeviceLocation)[field], MAX_LOCATION_FIELD_LENGTH, false);
    if (v === null) continue;
    if (field === 'country' && !/^[A-Z][A-Z0-9]$/.test(v)) {
      throw new InvalidArgumentError(
        'device.location.country',
        `expected a two-letter country code such as "DE", got ${JSON.stringify(v)}`,
      );
    }
    out[field] = v;
  }
  return Object.keys(out).length === 0 ? null : out;
}

/**
 * The location a proxy's header gives (`CF-IPCountry`), as the middleware records it: a two-letter code,
 * upper-cased, or undefined (anything else is dropped, never an error: a sign-in does not fail over it).
 */
export function headerCountry(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toUpperCase();
  return /^[A-Z][A-Z0-9]$/.test(v) ? v : undefined;
}

/**
 * A location from Cloudflare's `request.cf`: its `country`, `region`, `city` and `colo` that pass
 * `prepareDevice`'s checks (others are dropped), or undefined when none does.
 */
export function cfLocation(cf: unknown): DeviceLocation | undefined {
  if (cf === null || typeof cf !== 'object') return undefined;
  const out: DeviceLocation = {};
  for (const field of LOCATION_FIELDS) {
    const v = (cf as Record<string, unknown>)[field];
    if (typeof v !== 'string' || v === '' || v.length > MAX_LOCATION_FIELD_LENGTH || v.includes('\u0000') || !v.isWellFormed()) continue;
    if (field === 'country') {
      const c = headerCountry(v);
      if (c !== undefined) out.country = c;
    } else out[field] = v;
  }
  return Object.keys(out).length === 0 ? undefined : out;
}

/** Parses "a.b.c.d/n" or "v6::/n" (or a bare address) into a matcher. Throws on anything else. */
export function parseCidr(cidr: string): (ip: string) => boolean {
  const [addr = '', bitsText] = cidr.split('/');
  const bytes = ipBytes(addr);
  if (bytes === undefined) throw new Error(`not an IP address or CIDR range: ${JSON.stringify(cidr)}`);
  const bits = bitsText === undefined ? bytes.length * 8 : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > bytes.length * 8 || (bitsText !== undefined && !/^\d+$/.test(bitsText))) {
    throw new Error(`bad prefix length in ${JSON.stringify(cidr)}`);
  }
  return (ip: string) => {
    const other = ipBytes(ip);
    if (other === undefined || other.length !== bytes.length) return false;
    for (let i = 0; i < bits; i++) {
      const mask = 0x80 >> (i % 8);
      if (((bytes[i >> 3] as number) & mask) !== ((other[i >> 3] as number) & mask)) return false;
    }
    return true;
  };
}

/** An address as bytes (4 for IPv4, 16 for IPv6; IPv4-mapped IPv6 as 4), or undefined. */
function ipBytes(ip: string): number[] | undefined {
  let s = ip.trim();
  if (s.toLowerCase().startsWith('::ffff:') && IPV4.test(s.slice(7))) s = s.slice(7);
  if (IPV4.test(s)) return s.split('.').map(Number);
  return ipv6Groups(s)?.flatMap((g) => [g >> 8, g & 0xff]);
}
