/**
 * The one option checker: every options object of the package (the manager's config, the middleware's
 * options, the sync client's, the hosts' and the worker's) is checked with these, so a bad value is always a
 * `ConfigError` whose `option` names it and whose message says what was expected and what came. Modelled on
 * lru-cache's constructor: options destructured with defaults, each bad value rejected inline.
 */
import { ConfigError } from '../core/errors.ts';

const HOUR = 3_600_000;
/** The longest delay a timer takes (setTimeout runs a longer one at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** Durations beyond this are refused (100 years in ms). */
export const MAX_DURATION_MS = 100 * 365 * 24 * HOUR;

/** A value as an error message shows it: strings quoted, objects by their tag, never their contents. */
export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null || typeof v !== 'object') return String(v);
  return Object.prototype.toString.call(v);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/**
 * Checks an options object: `undefined` is `{}`, anything but a plain object is refused, and so is a key not
 * in `known` (a typo is an error, not a silently ignored option). `prefix` names nested objects (`cookie.`).
 */
export function options(option: string, v: unknown, known: ReadonlySet<string> | readonly string[], prefix = ''): Record<string, unknown> {
  if (v === undefined) return {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(option, `expected an object, got ${show(v)}`);
  const keys = known instanceof Set ? known : new Set(known as readonly string[]);
  for (const k of Object.keys(v as object)) if (!keys.has(k)) throw new ConfigError(`${prefix}${k}`, 'unknown option');
  return v as Record<string, unknown>;
}

/** An integer from `min` to `max`. */
export function int(option: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new ConfigError(option, `expected an integer, got ${show(v)}`);
  if (v < min || v > max) throw new ConfigError(option, `must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** A finite number from `min` to `max`. */
export function num(option: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(option, `expected a finite number, got ${show(v)}`);
  if (v < min || v > max) throw new ConfigError(option, `must be between ${min} and ${max}, got ${v}`);
  return v;
}

/**
 * A duration in ms: a finite number from `min` to `max` (default 100 years; `MAX_TIMER_MS` for one that sets
 * a timer).
 */
export function duration(option: string, v: unknown, min: number, max = MAX_DURATION_MS): number {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new ConfigError(option, `expected a finite number of milliseconds, got ${show(v)}`);
  if (v < min) throw new ConfigError(option, `must be at least ${min} ms, got ${v}`);
  if (v > max) throw new ConfigError(option, `must be at most ${max === MAX_DURATION_MS ? '100 years in ms' : `${max} ms`}, got ${v}`);
  return v;
}

/** A boolean. */
export function flag(option: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(option, `expected a boolean, got ${show(v)}`);
  return v;
}

/** One of a few strings. */
export function choice<T extends string>(option: string, v: unknown, values: readonly T[]): T {
  if (!values.includes(v as T)) throw new ConfigError(option, `expected ${values.map((x) => `'${x}'`).join(' or ')}, got ${show(v)}`);
  return v as T;
}

/** A string (non-empty unless `allowEmpty`). */
export function string(option: string, v: unknown, allowEmpty = false): string {
  if (typeof v !== 'string') throw new ConfigError(option, `expected a string, got ${show(v)}`);
  if (!allowEmpty && v === '') throw new ConfigError(option, 'expected a non-empty string');
  return v;
}

/** A function; `what` says which (e.g. "a function (event, c) => void"). */
export function fn<T extends (...args: never[]) => unknown>(option: string, v: unknown, what = 'a function'): T {
  if (typeof v !== 'function') throw new ConfigError(option, `expected ${what}, got ${show(v)}`);
  return v as T;
}
