// Arbitraries and oracles for property-based tests (fast-check). Shared by test/core/fuzz-core.test.ts, test/worker/fuzz-worker.test.ts and
// test/core/security.test.ts, test/middleware/security-hono.test.ts; fuzzers of other parts (middleware, worker) import what they need from here.
//
// Every oracle below states what the library must do independently of how src/ does it: the attribute
// oracle works from a JSON round trip plus PostgreSQL's jsonb restrictions, the token oracle from
// Node's base64url codec, the config oracle from the documented option ranges.
//
// Environment knobs (all optional):
//   FUZZ_SCALE=10            multiply every numRuns (a longer run before a release)
//   FUZZ_SEED=… FUZZ_PATH=…  replay a failure: fast-check prints both in its report (narrow with -t)
import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { LONGEST_SUFFIX } from '../../src/core/config.ts';
import { ConfigError, SessionError, type SessionErrorCode } from '../../src/core/errors.ts';

// ---- running ------------------------------------------------------------------------------------

/** fc.assert parameters: `numRuns` scaled by FUZZ_SCALE, seed/path from FUZZ_SEED/FUZZ_PATH when set. */
export function fuzzParams<T>(numRuns: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  const scale = Number(process.env.FUZZ_SCALE ?? '1');
  const runs = Math.max(1, Math.round(numRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
  const p: fc.Parameters<T> = { numRuns: runs, ...extra };
  if (process.env.FUZZ_SEED) p.seed = Number(process.env.FUZZ_SEED);
  if (process.env.FUZZ_PATH) p.path = process.env.FUZZ_PATH;
  return p;
}

// ---- errors -------------------------------------------------------------------------------------

export const SESSION_ERROR_CODES: ReadonlySet<SessionErrorCode> = new Set<SessionErrorCode>([
  'CONFIG_INVALID',
  'INVALID_ARGUMENT',
  'ATTRIBUTE_NOT_SERIALIZABLE',
  'ATTRIBUTE_TOO_LARGE',
  'SESSION_NOT_FOUND',
  'VERSION_CONFLICT',
  'SCHEMA_MISSING',
  'DATABASE_UNAVAILABLE',
  'DATABASE_ERROR',
]);

/** Throws (failing the property) unless `e` is a SessionError with a known code (and `code`, if given). */
export function assertSessionError(e: unknown, code?: SessionErrorCode): asserts e is SessionError {
  if (!(e instanceof SessionError)) {
    throw new Error(
      `expected a SessionError${code ? ` (${code})` : ''}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`,
      {
        cause: e,
      },
    );
  }
  if (!SESSION_ERROR_CODES.has(e.code)) throw new Error(`unknown error code ${String(e.code)}`, { cause: e });
  if (code !== undefined && e.code !== code) throw new Error(`expected code ${code}, got ${e.code}: ${e.message}`, { cause: e });
}

/** Runs `fn`, returning what it threw (or undefined). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

export async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return undefined;
}

export function assertConfigError(e: unknown, allowedOptions: Iterable<string>): asserts e is ConfigError {
  assertSessionError(e, 'CONFIG_INVALID');
  if (!(e instanceof ConfigError)) throw new Error('CONFIG_INVALID without being a ConfigError', { cause: e });
  const allowed = new Set(allowedOptions);
  if (!allowed.has(e.option))
    throw new Error(`ConfigError names "${e.option}", expected one of ${JSON.stringify([...allowed])}`, { cause: e });
  if (!e.message.includes(`"${e.option}"`)) throw new Error(`ConfigError message does not name the option: ${e.message}`, { cause: e });
}

// ---- prototype pollution --------------------------------------------------------------------------

const PROTOTYPES: [string, object][] = [
  ['Object.prototype', Object.prototype],
  ['Array.prototype', Array.prototype],
  ['Function.prototype', Function.prototype],
  ['String.prototype', String.prototype],
];
const pristine = new Map(PROTOTYPES.map(([n, p]) => [n, Reflect.ownKeys(p).map(String).sort().join(',')]));

/** Throws if any built-in prototype gained or lost a property since this module loaded. */
export function assertNoPollution(): void {
  for (const [name, proto] of PROTOTYPES) {
    const now = Reflect.ownKeys(proto).map(String).sort().join(',');
    if (now !== pristine.get(name)) throw new Error(`${name} was modified: ${now}`);
  }
  if (({} as { polluted?: unknown }).polluted !== undefined) throw new Error('({}).polluted is defined');
}

// ---- tokens -------------------------------------------------------------------------------------

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Oracle: a string that decodes to 32 bytes and re-encodes to itself (base64url, no padding). */
export function isCanonicalToken(t: unknown): t is string {
  if (typeof t !== 'string' || t.length !== 43) return false;
  for (const ch of t) if (!B64URL.includes(ch)) return false;
  const bytes = Buffer.from(t, 'base64url');
  return bytes.length === 32 && bytes.toString('base64url') === t;
}

/** Tokens of the shape the library issues (random, so unknown to any store). */
export const wellFormedToken: fc.Arbitrary<string> = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => Buffer.from(b).toString('base64url'));

const b64Char = fc.constantFrom(...B64URL);
const nearB64Char = fc.constantFrom(...`${B64URL}+/=.~ %\n\t\u0000é😀\uD800`);

/** Everything a cookie or a header could carry that is not an issued token's shape. Filtered with the oracle. */
export function malformedToken(liveTokens: readonly string[] = []): fc.Arbitrary<unknown> {
  const mutations: fc.Arbitrary<unknown>[] = [];
  if (liveTokens.length > 0) {
    const live = fc.constantFrom(...liveTokens);
    mutations.push(
      fc
        .tuple(live, fc.constantFrom('=', ' ', '\n', '\u0000', '%3D', 'A', '==', '.sig'))
        .chain(([t, s]) => fc.constantFrom(t + s, s + t, t.slice(0, 42), t.slice(1), `${t.slice(0, 21)}${s}${t.slice(21)}`)),
      live.map((t) => t.toUpperCase()),
      live.map((t) => Buffer.from(t, 'base64url').toString('base64')),
      live.map((t) => Buffer.from(t, 'base64url').toString('hex')),
      live.map((t) => encodeURIComponent(`${t}=`)),
      live.map((t) => new String(t)),
      live.map((t) => [t]),
      live.map((t) => ({ toString: () => t, valueOf: () => t })),
      // The last character carries 2 unused bits: a non-zero value there is another string for the same bytes.
      fc.tuple(live, fc.integer({ min: 1, max: 3 })).map(([t, d]) => t.slice(0, 42) + B64URL[B64URL.indexOf(t[42]!) + d]),
    );
  }
  return fc
    .oneof(
      fc.constant(''),
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme', maxLength: 50 }),
      fc.string({ unit: b64Char, minLength: 40, maxLength: 46 }),
      fc.string({ unit: nearB64Char, minLength: 40, maxLength: 46 }),
      fc.string({ unit: b64Char, minLength: 43, maxLength: 43 }), // mostly non-canonical last character
      fc.constantFrom(1_000, 100_000, 2_000_000).map((n) => 'A'.repeat(n)),
      fc.constantFrom(null, undefined, 0, 1n, Number.NaN, true, Symbol('t'), {}, [], () => 'x', new Uint8Array(32), new Date()),
      fc.anything({ maxDepth: 1 }),
      ...mutations,
    )
    .filter((t) => !isCanonicalToken(t));
}

// ---- attribute names and values ---------------------------------------------------------------------

/** The limits the design documents (src/core/attributes.ts MAX_DEPTH, MAX_KEY_LENGTH). */
export const SPEC = { maxDepth: 64, maxKeyLength: 256 } as const;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** jsonb refuses \u0000 and lone surrogates; everything else of Unicode is storable. */
export function storableString(s: string): boolean {
  return !s.includes('\u0000') && !LONE_SURROGATE.test(s);
}

export function isValidKey(k: unknown): k is string {
  return typeof k === 'string' && k.length >= 1 && k.length <= SPEC.maxKeyLength && storableString(k);
}

export type ValueOutcome = 'ok' | 'ATTRIBUTE_NOT_SERIALIZABLE' | 'ATTRIBUTE_TOO_LARGE';

/**
 * Oracle: what storing `value` under a limit of `maxBytes` must do. Accepted exactly when JSON gives the
 * same plain structure back (so -0, NaN, Infinity, undefined, functions, symbols, BigInt, cycles, class
 * instances, Date, Map, sparse arrays, named array properties, accessors and toJSON methods are refused),
 * every string and key is storable in jsonb, containers nest at most SPEC.maxDepth deep, and the UTF-8
 * JSON fits in maxBytes.
 */
export function expectedValueOutcome(value: unknown, maxBytes: number): ValueOutcome {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return 'ATTRIBUTE_NOT_SERIALIZABLE';
  }
  if (json === undefined) return 'ATTRIBUTE_NOT_SERIALIZABLE';
  if (!sameJson(value, JSON.parse(json), 0)) return 'ATTRIBUTE_NOT_SERIALIZABLE';
  if (Buffer.byteLength(json, 'utf8') > maxBytes) return 'ATTRIBUTE_TOO_LARGE';
  return 'ok';
}

/**
 * True when `orig` is a plain JSON structure (storable strings, finite non-negative-zero numbers, plain
 * arrays and objects, data properties only, no toJSON, containers at depth < SPEC.maxDepth) equal to
 * `back`. Key order is ignored (jsonb reorders keys).
 */
export function sameJson(orig: unknown, back: unknown, depth: number): boolean {
  switch (typeof orig) {
    case 'string':
      return orig === back && storableString(orig);
    case 'number':
      return Object.is(orig, back) && Number.isFinite(orig) && !Object.is(orig, -0);
    case 'boolean':
      return orig === back;
    case 'object':
      break;
    default:
      return false;
  }
  if (orig === null) return back === null;
  if (depth >= SPEC.maxDepth) return false;
  if (back === null || typeof back !== 'object') return false;
  if (typeof (orig as { toJSON?: unknown }).toJSON === 'function') return false;
  if (Object.getOwnPropertySymbols(orig).length > 0) return false;
  const proto = Object.getPrototypeOf(orig);
  if (Array.isArray(orig)) {
    if (proto !== Array.prototype || !Array.isArray(back) || back.length !== orig.length) return false;
    if (Object.keys(orig).length !== orig.length) return false;
    for (let i = 0; i < orig.length; i++) {
      const d = Object.getOwnPropertyDescriptor(orig, i);
      if (d === undefined || !('value' in d) || !sameJson(d.value, back[i], depth + 1)) return false;
    }
    return true;
  }
  if ((proto !== Object.prototype && proto !== null) || Array.isArray(back)) return false;
  const keys = Object.keys(orig);
  if (keys.length !== Object.keys(back).length) return false;
  for (const k of keys) {
    if (!storableString(k) || !Object.hasOwn(back, k)) return false;
    const d = Object.getOwnPropertyDescriptor(orig, k)!;
    if (!('value' in d) || !sameJson(d.value, (back as Record<string, unknown>)[k], depth + 1)) return false;
  }
  return true;
}

/** Throws unless every container in `v` is a plain Array or an object with prototype Object.prototype or null. */
export function assertPlainJson(v: unknown, path = '$'): void {
  if (v === null || typeof v !== 'object') return;
  const proto = Object.getPrototypeOf(v);
  if (Array.isArray(v)) {
    if (proto !== Array.prototype) throw new Error(`${path}: array with a foreign prototype`);
    v.forEach((x, i) => {
      assertPlainJson(x, `${path}[${i}]`);
    });
    return;
  }
  if (proto !== Object.prototype && proto !== null) throw new Error(`${path}: object whose prototype is not Object.prototype or null`);
  for (const k of Object.keys(v)) assertPlainJson((v as Record<string, unknown>)[k], `${path}.${k}`);
}

/** Names that are special to JavaScript, JSON handling, the storage format ({v, ver, exp}) or SQL. */
export const DANGEROUS_NAMES = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  'isPrototypeOf',
  'toJSON',
  'then',
  'length',
  'v',
  'ver',
  'exp',
  '0',
  '-0',
  '1e3',
  ' ',
  '"',
  '\\',
  '\u2028',
  '$1',
  '?',
  "'; DROP TABLE sessions; --",
  '{"v":1}',
  'a.b',
  '$.*',
] as const;

/** Attribute names: mostly valid (unicode, dangerous names, length 256), some not (empty, 257, NUL, lone surrogates, non-strings). */
export const attributeKey: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ minLength: 1, maxLength: 12 }) },
  { weight: 4, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }) },
  { weight: 4, arbitrary: fc.constantFrom(...DANGEROUS_NAMES) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '',
      'k'.repeat(256),
      'k'.repeat(257),
      '😀'.repeat(128),
      '😀'.repeat(129),
      'a\u0000b',
      '\uD800',
      'x\uDFFF',
      '\uDBFF\uDFFF',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(undefined, null, 0, 1n, Symbol('k'), {}, ['k'], true) },
);

/** Numbers at the edges of double precision and of JSON (some refused: -0, NaN, ±Infinity). */
export const EDGE_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  0.1 + 0.2,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 64,
  Number.MIN_VALUE,
  -Number.MIN_VALUE,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  1e308,
  -1e308,
  1e-308,
  2.2250738585072014e-308,
  Number.EPSILON,
  1e21,
  1e-7,
  123456789.12345679,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
];
const edgeNumber = fc.constantFrom(...EDGE_NUMBERS);

const loneSurrogateString = fc
  .tuple(fc.string({ maxLength: 5 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string({ maxLength: 5 }))
  .map(([a, c, b]) => a + String.fromCharCode(c) + b);

const anyUnitString = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 20 });

const stringValue: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme' }),
  anyUnitString,
  loneSurrogateString,
  fc.string({ maxLength: 5 }).map((s) => `${s}\u0000${s}`),
  fc.constantFrom(
    '',
    '\u0000',
    '\uD800',
    '\uDFFF',
    '\uDBFF\uDFFF',
    '\uFEFF',
    '\uFFFF',
    '\u2028\u2029',
    '"\\',
    '\\u0000',
    "'; DROP TABLE sessions; --",
  ),
);

/** Strings whose JSON is within a few bytes of 16384 (the default limit), in 1- to 6-byte JSON units. */
const boundaryString = fc
  .record({ unit: fc.constantFrom('a', 'é', '€', '😀', '\n', '"', '\u0001'), delta: fc.integer({ min: -4, max: 4 }) })
  .map(({ unit, delta }) => {
    const bytes = Buffer.byteLength(JSON.stringify(unit)) - 2;
    const count = Math.floor((16384 - 2) / bytes);
    const pad = Math.max(0, 16384 - 2 - bytes * count + delta);
    return unit.repeat(count) + 'a'.repeat(pad);
  });

const hugeString = fc.constantFrom(100_000, 2_000_000).map((n) => 'x'.repeat(n));

const smallLeaf = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 4 }));

/** `depth` containers around a leaf (arrays, objects, or alternating). */
export function nest(depth: number, shape: 'array' | 'object' | 'mixed', leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = shape === 'array' || (shape === 'mixed' && i % 2 === 0) ? [v] : { n: v };
  return v;
}

/** Containers nested `depth` deep around a leaf, near and far beyond SPEC.maxDepth. */
const deeplyNested = fc
  .record({
    depth: fc.oneof(fc.integer({ min: 60, max: 68 }), fc.integer({ min: 0, max: 200 }), fc.constant(3000)),
    shape: fc.constantFrom('array', 'object', 'mixed'),
    leaf: smallLeaf,
  })
  .map(({ depth, shape, leaf }) => nest(depth, shape, leaf));

/** Objects with own properties named like prototypes and storage fields (defined, not assigned). */
const dangerousObject = fc
  .array(fc.tuple(fc.constantFrom(...DANGEROUS_NAMES), fc.oneof(smallLeaf, fc.jsonValue({ maxDepth: 1 }))), { maxLength: 6 })
  .chain((entries) =>
    fc.boolean().map((nullProto) => {
      const o = nullProto ? Object.create(null) : {};
      for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
      return o as unknown;
    }),
  );

/** JSON texts whose parse has own "__proto__"/"constructor" keys: stored as data, never as prototypes. */
export const POLLUTION_JSON: readonly string[] = [
  '{"__proto__":{"polluted":"yes"}}',
  '{"constructor":{"prototype":{"polluted":"yes"}}}',
  '{"a":{"__proto__":{"polluted":1}},"b":[{"__proto__":{"polluted":2}}]}',
  '[{"__proto__":{"polluted":true}},{"__proto__":null}]',
  '{"__proto__":[],"constructor":null,"prototype":{"polluted":1}}',
  '{"__proto__":{"__proto__":{"polluted":1}}}',
];
const pollutionPayload = fc.constantFrom(...POLLUTION_JSON).map((s) => JSON.parse(s) as unknown);

class Point {
  x = 1;
}
class MyArray extends Array<number> {}

/** Values no JSON round trip reproduces (made fresh per draw: some are cyclic or mutable). */
const notJson: fc.Arbitrary<unknown> = fc
  .constantFrom(
    () => () => 1,
    () => async () => 1,
    () => Point,
    () => 10n,
    () => Symbol('s'),
    () => undefined,
    () => Number.NaN,
    () => Number.POSITIVE_INFINITY,
    () => Number.NEGATIVE_INFINITY,
    () => -0,
    () => new Date(0),
    () => new Date(Number.NaN),
    () => new Map([[1, 2]]),
    () => new Set([1]),
    () => new Point(),
    () => /re/g,
    () => new Error('e'),
    () => new Uint8Array([1, 2]),
    () => new ArrayBuffer(2),
    () => new Number(1),
    () => new String('s'),
    () => new Boolean(false),
    () => Object(Symbol('boxed')),
    () => Promise.resolve(1),
    () => new WeakMap(),
    () => Object.create({ inherited: 1 }),
    () => Object.create(Array.prototype),
    // biome-ignore lint/suspicious/noSparseArray: the point
    () => [, 1],
    () => Object.assign([1, 2], { extra: 'x' }),
    () => Object.assign([1], { toJSON: () => ({ other: true }) }),
    () => MyArray.from([1, 2]),
    () => {
      const a = [0];
      Object.defineProperty(a, 0, { get: () => 1, enumerable: true });
      return a;
    },
    () => ({
      get x() {
        return 1;
      },
    }),
    () => ({
      get boom(): number {
        throw new Error('getter ran');
      },
    }),
    () => ({ [Symbol('k')]: 1 }),
    () => Object.defineProperty({ a: 1 }, 'toJSON', { value: () => ({ a: 1 }) }),
    () => ({ toJSON: () => 1 }),
    () => {
      const o: Record<string, unknown> = { a: 1 };
      o.self = o;
      return o;
    },
    () => {
      const a: unknown[] = [1];
      a.push(a);
      return a;
    },
    () => {
      const a: Record<string, unknown> = {};
      const b = { a };
      a.b = [b];
      return a;
    },
    function args(this: unknown) {
      // biome-ignore lint/complexity/noArguments: an arguments object is a candidate value
      return arguments;
    },
  )
  .map((make) => make());

/** A value placed `path` deep inside otherwise valid JSON (siblings included). */
function embedded(leaf: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> {
  return fc
    .record({ leaf, path: fc.array(fc.constantFrom('array', 'object'), { maxLength: 4 }), sibling: fc.jsonValue({ maxDepth: 1 }) })
    .map(({ leaf, path, sibling }) => path.reduce<unknown>((v, step) => (step === 'array' ? [sibling, v] : { s: sibling, x: v }), leaf));
}

/** The same (acyclic) object reachable twice: JSON writes it twice, which reads back equal. */
const sharedReference = fc.jsonValue({ maxDepth: 2 }).map((x) => ({ a: x, b: [x, { c: x }] }));

/** Attribute values: JSON of all kinds, edge numbers and strings, sizes at the limit, deep nesting, hostile keys, non-JSON values. */
export const attributeValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2, noUnicodeString: false }) },
  { weight: 3, arbitrary: fc.oneof(edgeNumber, fc.double(), fc.integer()) },
  { weight: 3, arbitrary: stringValue },
  { weight: 1, arbitrary: boundaryString },
  { weight: 1, arbitrary: hugeString },
  { weight: 2, arbitrary: deeplyNested },
  { weight: 3, arbitrary: dangerousObject },
  { weight: 1, arbitrary: pollutionPayload },
  { weight: 2, arbitrary: notJson },
  { weight: 3, arbitrary: embedded(fc.oneof(notJson, edgeNumber, stringValue)) },
  { weight: 1, arbitrary: sharedReference },
);

// ---- attribute expiry (Session.set's expiresAt option) ---------------------------------------------

/** 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the times a timestamptz round trip can carry. */
export const TIME_RANGE = { min: -62135596800000, max: 253402300799999 } as const;

export type ExpirySpec = { kind: 'none' } | { kind: 'relative'; delta: number; asDate: boolean } | { kind: 'raw'; value: unknown };

export const expirySpec: fc.Arbitrary<ExpirySpec> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 3,
    arbitrary: fc
      .record({ delta: fc.oneof(fc.integer({ min: -86_400_000, max: 86_400_000 * 365 }), fc.constantFrom(-1, 0, 1)), asDate: fc.boolean() })
      .map((r) => ({ kind: 'relative' as const, ...r })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom<unknown>(
        null,
        Number.NaN,
        Number.POSITIVE_INFINITY,
        1e300,
        8.64e15,
        -8.64e15,
        TIME_RANGE.max,
        TIME_RANGE.max + 1,
        TIME_RANGE.min,
        TIME_RANGE.min - 1,
        new Date(Number.NaN),
        new Date(TIME_RANGE.max + 1),
        '2030-01-01',
        10n,
        {},
        true,
      )
      .map((value) => ({ kind: 'raw' as const, value })),
  },
);

export function resolveExpiry(spec: ExpirySpec, now: number): unknown {
  if (spec.kind === 'none') return undefined;
  if (spec.kind === 'raw') return spec.value;
  return spec.asDate ? new Date(now + spec.delta) : now + spec.delta;
}

/** Oracle for an expiresAt option: undefined/null mean none; a finite time in TIME_RANGE is kept; anything else is INVALID_ARGUMENT. */
export function expectedExpiry(v: unknown): { ok: true; ms: number | null } | { ok: false } {
  if (v === undefined || v === null) return { ok: true, ms: null };
  const ms = v instanceof Date ? v.getTime() : v;
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < TIME_RANGE.min || ms > TIME_RANGE.max) return { ok: false };
  return { ok: true, ms };
}

// ---- configuration ------------------------------------------------------------------------------

const HOUR = 3_600_000;
const HUNDRED_YEARS = 100 * 365 * 24 * HOUR;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** The prefix must leave room, within PostgreSQL's 63-byte names, for the longest name derived from it. */
export const MAX_TABLE_PREFIX = 63 - LONGEST_SUFFIX.length;

/** The documented options and their ranges (src/core/config.ts docs), as predicates. */
export const CONFIG_SPEC: Record<string, (v: unknown) => boolean> = {
  maxSessions: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 1_000_000,
  maxAttributeLength: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 64 * 1024 * 1024,
  sessionExpiration: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 1 && v <= HUNDRED_YEARS,
  inactivityDuration: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= HUNDRED_YEARS,
  cleanupInterval: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 1 && v <= HUNDRED_YEARS,
  cacheSize: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 1_000_000,
  tablePrefix: (v) => typeof v === 'string' && (v === '' || IDENT.test(v)) && v.length <= MAX_TABLE_PREFIX,
  schemaName: (v) => typeof v === 'string' && IDENT.test(v) && v.length <= 63 && !v.toLowerCase().startsWith('pg_'),
  lastAccessUpdateInterval: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 1 && v <= HUNDRED_YEARS,
  lastAccessUpdateBatchSize: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 50_000,
  maxStaleness: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= HUNDRED_YEARS,
  clock: (v) => typeof v === 'function',
};
export const CONFIG_OPTIONS = Object.keys(CONFIG_SPEC);

const duration = (min: number) =>
  fc.oneof(
    fc.double({ min, max: HUNDRED_YEARS, noNaN: true }),
    fc.integer({ min: Math.ceil(min), max: 365 * 24 * HOUR }),
    fc.constantFrom(min, HUNDRED_YEARS),
  );

/** Values inside each option's range (cacheSize kept small: the LRUs preallocate; its maximum is tested once, directly). */
const validConfigValue: Record<string, fc.Arbitrary<unknown>> = {
  maxSessions: fc.oneof(fc.integer({ min: 1, max: 1_000_000 }), fc.constantFrom(1, 1_000_000)),
  maxAttributeLength: fc.oneof(fc.integer({ min: 1, max: 64 * 1024 * 1024 }), fc.constantFrom(1, 64 * 1024 * 1024)),
  sessionExpiration: duration(1),
  inactivityDuration: duration(0),
  cleanupInterval: duration(1),
  cacheSize: fc.integer({ min: 0, max: 5000 }),
  tablePrefix: fc.oneof(fc.constant(''), fc.stringMatching(new RegExp(`^[A-Za-z_][A-Za-z0-9_]{0,${MAX_TABLE_PREFIX - 1}}$`))),
  schemaName: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/).filter((s) => !s.toLowerCase().startsWith('pg_')),
  lastAccessUpdateInterval: duration(1),
  lastAccessUpdateBatchSize: fc.integer({ min: 1, max: 50_000 }),
  maxStaleness: duration(0),
  clock: fc.constantFrom(Date.now, () => 0),
};

/** Anything, including values just outside each range, with cacheSize candidates capped for speed. */
const anyConfigValue: fc.Arbitrary<unknown> = fc
  .oneof(
    fc.anything({
      maxDepth: 1,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withTypedArray: true,
      withSparseArray: true,
    }),
    edgeNumber,
    fc.constantFrom(
      0,
      -1,
      0.5,
      1.5,
      63,
      64,
      50_001,
      1_000_001,
      64 * 1024 * 1024 + 1,
      HUNDRED_YEARS + 1,
      '',
      'pg_x',
      'a b',
      'x"y',
      '5',
      'p'.repeat(MAX_TABLE_PREFIX),
      'p'.repeat(MAX_TABLE_PREFIX + 1),
    ),
    fc.string({ unit: 'binary', maxLength: 70 }),
    fc.func(fc.integer()),
  )
  .filter((v) => !(Number.isInteger(v) && (v as number) > 5000 && (v as number) <= 1_000_000)); // keep cacheSize candidates cheap

const unknownConfigKey = fc
  .oneof(
    fc.string({ maxLength: 20 }),
    fc.constantFrom(
      ...DANGEROUS_NAMES,
      'maxsessions',
      'max_sessions',
      'MaxSessions',
      'schema',
      'tableprefix',
      'prefix',
      'cache_size',
      'ttl',
    ),
  )
  .filter((k) => !Object.hasOwn(CONFIG_SPEC, k));

export interface ConfigCase {
  config: unknown;
  /** Own keys whose value the oracle holds to be wrong (unknown key or value outside the range). */
  faulty: string[];
}

/** Config objects built by definition (so `__proto__` is an own key), with mostly valid values. */
export const configCase: fc.Arbitrary<ConfigCase> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc
      .tuple(
        fc.array(
          fc
            .constantFrom(...CONFIG_OPTIONS)
            .chain((k) =>
              fc
                .oneof(
                  { weight: 3, arbitrary: validConfigValue[k]! },
                  { weight: 1, arbitrary: anyConfigValue },
                  { weight: 1, arbitrary: fc.constant(undefined) },
                )
                .map((v) => [k, v] as const),
            ),
          { maxLength: 8 },
        ),
        fc.oneof(
          { weight: 3, arbitrary: fc.constant([]) },
          { weight: 1, arbitrary: fc.array(fc.tuple(unknownConfigKey, anyConfigValue), { maxLength: 2 }) },
        ),
        fc.boolean(),
      )
      .map(([known, unknown, nullProto]) => {
        const config: Record<string, unknown> = nullProto ? Object.create(null) : {};
        for (const [k, v] of [...known, ...unknown])
          Object.defineProperty(config, k, { value: v, enumerable: true, writable: true, configurable: true });
        // Unknown keys are faults even when undefined (a misspelt option is reported, not ignored).
        const faulty = Object.keys(config).filter(
          (k) => !Object.hasOwn(CONFIG_SPEC, k) || (config[k] !== undefined && !CONFIG_SPEC[k]!(config[k])),
        );
        return { config, faulty };
      }),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<unknown>(null, 0, 'config', true, [], [1], () => ({}), 10n, Symbol('c'))
      .map((config) => ({ config, faulty: ['config'] })),
  },
);
