import { AttributeNotSerializableError, AttributeTooLargeError, InvalidArgumentError } from './errors.ts';

/** Deepest nesting accepted in an attribute value (PostgreSQL's jsonb parser and JSON.stringify recurse). */
export const MAX_DEPTH = 64;
/** Longest attribute name, in UTF-16 code units. */
export const MAX_KEY_LENGTH = 256;

const encoder = new TextEncoder();

/** An attribute as the library holds it: an immutable value, its version, and an optional expiry (ms). */
export interface AttributeRecord {
  readonly value: unknown;
  readonly version: number;
  readonly expiresAt: number | null;
}

export function validateKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidArgumentError('key', `attribute names are strings, got ${typeof key}`);
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new InvalidArgumentError('key', `attribute names are 1 to ${MAX_KEY_LENGTH} characters, got ${key.length}`);
  }
  if (!isStorableString(key)) throw new InvalidArgumentError('key', 'attribute names must be well-formed Unicode without NUL characters');
}

function isStorableString(s: string): boolean {
  // PostgreSQL's jsonb rejects \u0000 and lone surrogates.
  return !s.includes('\u0000') && s.isWellFormed();
}

/**
 * Checks that `value` survives a JSON round trip unchanged (so what is read back equals what was set),
 * then returns its JSON and a deeply frozen copy. Accepted: null, booleans, finite numbers, strings,
 * arrays and plain objects of those. Refused with a typed error: undefined, functions, symbols, BigInt,
 * NaN/Infinity, Date, Map, class instances, cycles, nesting deeper than MAX_DEPTH, and values whose JSON
 * is longer than `maxBytes`.
 */
export function prepareValue(key: string, value: unknown, maxBytes: number): { json: string; frozen: unknown } {
  check(key, value, '$', 0, new Set());
  const json = JSON.stringify(value);
  // A quick upper bound first: UTF-8 is at most 3 bytes per UTF-16 code unit.
  const size = json.length * 3 <= maxBytes ? json.length : encoder.encode(json).length;
  if (size > maxBytes) throw new AttributeTooLargeError(key, size, maxBytes);
  return { json, frozen: deepFreeze(JSON.parse(json)) };
}

function check(key: string, v: unknown, path: string, depth: number, seen: Set<object>): void {
  switch (typeof v) {
    case 'string':
      if (!isStorableString(v))
        throw new AttributeNotSerializableError(key, path, 'strings must be well-formed Unicode without NUL characters');
      return;
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(v)) throw new AttributeNotSerializableError(key, path, `${v} has no JSON form`);
      if (Object.is(v, -0)) throw new AttributeNotSerializableError(key, path, '-0 would come back as 0');
      return;
    case 'object':
      break;
    default:
      throw new AttributeNotSerializableError(key, path, `${typeof v} values cannot be stored`);
  }
  if (v === null) return;
  if (depth >= MAX_DEPTH) throw new AttributeNotSerializableError(key, path, `nested deeper than ${MAX_DEPTH} levels`);
  if (seen.has(v)) throw new AttributeNotSerializableError(key, path, 'circular reference');
  seen.add(v);
  const proto = Object.getPrototypeOf(v);
  if (Array.isArray(v) ? proto !== Array.prototype : proto !== Object.prototype && proto !== null) {
    const name = (v as object).constructor?.name ?? 'object';
    throw new AttributeNotSerializableError(key, path, `${name} instances are not plain JSON (store a plain object or a string)`);
  }
  // JSON.stringify would store what toJSON returns instead (it looks the method up like this, own or not).
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') {
    throw new AttributeNotSerializableError(key, path, 'values with a toJSON method would be stored as what it returns');
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const desc = Object.getOwnPropertyDescriptor(v, i);
      if (!desc) throw new AttributeNotSerializableError(key, `${path}[${i}]`, 'sparse arrays would come back with null');
      if (desc.get || desc.set) throw new AttributeNotSerializableError(key, `${path}[${i}]`, 'accessor properties cannot be stored');
      check(key, v[i], `${path}[${i}]`, depth + 1, seen);
    }
    if (Object.keys(v).length !== v.length || Object.getOwnPropertySymbols(v).length > 0) {
      throw new AttributeNotSerializableError(key, path, 'named properties of arrays would be lost');
    }
  } else {
    if (Object.getOwnPropertySymbols(v).length > 0) throw new AttributeNotSerializableError(key, path, 'symbol keys cannot be stored');
    for (const k of Object.keys(v)) {
      if (!isStorableString(k))
        throw new AttributeNotSerializableError(key, `${path}.${k}`, 'keys must be well-formed Unicode without NUL');
      const desc = Object.getOwnPropertyDescriptor(v, k);
      if (desc && (desc.get || desc.set))
        throw new AttributeNotSerializableError(key, `${path}.${k}`, 'accessor properties cannot be stored');
      check(key, (v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1, seen);
    }
  }
  seen.delete(v);
}

/** Values handed out by sessions are shared with the cache, so they are frozen, never copied per read. */
export function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}

/** Parses the stored jsonb map into records. Unknown shapes (a row edited by hand) are read leniently. */
export function parseStoredAttributes(raw: unknown): Map<string, AttributeRecord> {
  const obj = typeof raw === 'string' ? JSON.parse(raw) : raw;
  const out = new Map<string, AttributeRecord>();
  if (obj === null || typeof obj !== 'object') return out;
  for (const k of Object.keys(obj)) {
    const a = (obj as Record<string, unknown>)[k];
    if (a !== null && typeof a === 'object' && !Array.isArray(a) && 'v' in a) {
      const r = a as { v: unknown; ver?: unknown; exp?: unknown };
      out.set(k, {
        value: deepFreeze(r.v),
        version: typeof r.ver === 'number' ? r.ver : 0,
        expiresAt: typeof r.exp === 'number' ? r.exp : null,
      });
    } else {
      out.set(k, { value: deepFreeze(a), version: 0, expiresAt: null });
    }
  }
  return out;
}
