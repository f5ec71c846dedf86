// Token hashing: the synchronous SHA-256 (the runtime's own, through process.getBuiltinModule) and the
// Web Crypto fallback give the same digests, checked against published vectors and against each other.
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { generateToken, hashToken, hashTokenSync } from '../../src/core/token.ts';

// FIPS 180-2 / NIST example vectors (ASCII messages).
const VECTORS: [string, string][] = [
  ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  ['abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq', '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'],
  [
    'abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu',
    'cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1',
  ],
];

async function webCryptoHex(s: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(s)));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** token.ts loaded afresh with `process.getBuiltinModule` replaced (or removed) while it initializes. */
async function loadTokenModuleWith(getBuiltinModule: ((id: string) => unknown) | undefined) {
  vi.resetModules();
  const p = process as unknown as { getBuiltinModule?: unknown };
  const saved = p.getBuiltinModule;
  if (getBuiltinModule === undefined) delete p.getBuiltinModule;
  else p.getBuiltinModule = getBuiltinModule;
  try {
    return await import('../../src/core/token.ts');
  } finally {
    p.getBuiltinModule = saved;
  }
}

describe('hashToken', () => {
  afterEach(() => {
    vi.resetModules();
  });

  it('has a synchronous SHA-256 on Node (process.getBuiltinModule) that hashToken uses', () => {
    expect(typeof (process as unknown as { getBuiltinModule?: unknown }).getBuiltinModule).toBe('function');
    expect(hashTokenSync).toBeTypeOf('function');
  });

  it('gives the published SHA-256 digests', async () => {
    for (const [message, digest] of VECTORS) {
      expect(await hashToken(message)).toBe(digest);
      expect(hashTokenSync?.(message)).toBe(digest);
      expect(await webCryptoHex(message)).toBe(digest);
    }
  });

  it('agrees with Web Crypto and node:crypto on 1,000 tokens', async () => {
    for (let i = 0; i < 1000; i++) {
      const token = generateToken();
      const h = await hashToken(token);
      expect(h).toMatch(/^[0-9a-f]{64}$/);
      expect(h).toBe(await webCryptoHex(token));
      expect(h).toBe(createHash('sha256').update(token, 'utf8').digest('hex'));
    }
  });

  it('falls back to Web Crypto where the runtime has no getBuiltinModule (workerd without nodejs_compat, browsers)', async () => {
    const m = await loadTokenModuleWith(undefined);
    expect(m.hashTokenSync).toBeUndefined();
    for (const [message, digest] of VECTORS) expect(await m.hashToken(message)).toBe(digest);
    const token = generateToken();
    expect(await m.hashToken(token)).toBe(await webCryptoHex(token));
  });

  it('ignores a node:crypto look-alike that does not compute SHA-256, and one that throws', async () => {
    const wrong = () => ({ createHash: () => ({ update: () => ({ digest: () => '00'.repeat(32) }) }) });
    const m1 = await loadTokenModuleWith(wrong);
    expect(m1.hashTokenSync).toBeUndefined();
    expect(await m1.hashToken('abc')).toBe(VECTORS[1]![1]);
    const m2 = await loadTokenModuleWith(() => {
      throw new Error('no such module');
    });
    expect(m2.hashTokenSync).toBeUndefined();
    expect(await m2.hashToken('abc')).toBe(VECTORS[1]![1]);
  });
});
