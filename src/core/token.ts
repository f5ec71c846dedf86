/**
 * Session tokens: 32 bytes (256 bits) from `crypto.getRandomValues`, base64url without padding (43
 * characters). The database stores only SHA-256 of the token, so a dump of the tables authenticates
 * nobody. Web APIs only (plus a runtime's own synchronous SHA-256 when it offers one, see hashTokenSync):
 * this file runs unchanged in workerd, Deno, Bun and Node.
 */
export const TOKEN_BYTES = 32;
export const TOKEN_LENGTH = 43;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function generateToken(): string {
  const bytes = new Uint8Array(TOKEN_BYTES);
  crypto.getRandomValues(bytes);
  return base64url(bytes);
}

/** True when `token` has the exact shape of a token we issue. Anything else is rejected without a query. */
export function isWellFormedToken(token: unknown): token is string {
  if (typeof token !== 'string' || !TOKEN_RE.test(token)) return false;
  // 43 base64url characters carry 258 bits for 256: the last character's two low bits must be zero.
  return 'AEIMQUYcgkosw048'.includes(token[42] as string);
}

export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID_RE.test(v);
}

/** SHA-256 of the token's ASCII, as lower-case hex (passed to SQL as `decode($1, 'hex')`). */
export async function hashToken(token: string): Promise<string> {
  return hashTokenSync?.(token) ?? toHex(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))));
}

interface NodeCrypto {
  createHash(algorithm: 'sha256'): { update(data: string, encoding: 'utf8'): { digest(encoding: 'hex'): string } };
}

/**
 * A synchronous SHA-256 where the runtime has one: Node's crypto module, reached through
 * `process.getBuiltinModule` (Node ≥ 20.16, Bun, Deno, workerd with nodejs_compat), so nothing here imports
 * a `node:` module and the file still bundles for any runtime. Web Crypto's digest costs 25-50 µs per call
 * in Node (a promise and a thread-pool hop); this costs ~2 µs. Undefined elsewhere: Web Crypto then.
 */
export const hashTokenSync: ((token: string) => string) | undefined = (() => {
  try {
    const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
    const nodeCrypto = proc?.getBuiltinModule?.('node:crypto') as NodeCrypto | undefined;
    if (typeof nodeCrypto?.createHash !== 'function') return undefined;
    const hash = (token: string) => nodeCrypto.createHash('sha256').update(token, 'utf8').digest('hex');
    // Trust it only if it computes SHA-256 (a polyfill that does not would lock every user out).
    return hash('abc') === 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' ? hash : undefined;
  } catch {
    return undefined;
  }
})();

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += HEX[b];
  return s;
}

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Base64url without padding, by table (btoa and three regex replacements cost ~0.8 us more per token). */
function base64url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8) | (bytes[i + 2] as number);
    out += B64URL.charAt(n >>> 18) + B64URL.charAt((n >>> 12) & 63) + B64URL.charAt((n >>> 6) & 63) + B64URL.charAt(n & 63);
  }
  if (i + 1 === bytes.length) {
    const n = (bytes[i] as number) << 16;
    out += B64URL.charAt(n >>> 18) + B64URL.charAt((n >>> 12) & 63);
  } else if (i + 2 === bytes.length) {
    const n = ((bytes[i] as number) << 16) | ((bytes[i + 1] as number) << 8);
    out += B64URL.charAt(n >>> 18) + B64URL.charAt((n >>> 12) & 63) + B64URL.charAt((n >>> 6) & 63);
  }
  return out;
}
