import { type AttributeRecord, prepareValue, validateKey } from './attributes.ts';
import type { SessionRecord } from './cache.ts';
import { InvalidArgumentError } from './errors.ts';

/** Attribute map of an app: `SessionManager<{ cartId: string; theme: 'light' | 'dark' }>`. */
export type Attributes = Record<string, unknown>;

export interface SetAttributeOptions {
  /** When the attribute stops being visible, ms since the epoch. Cleanup removes it later. */
  expiresAt?: number | Date;
}

/** A pending change of one attribute. */
export interface AttributeChange {
  value: unknown;
  json: string;
  expiresAt: number | null;
}

/**
 * One session as loaded by `getSession` or `createSession`. Reads come from an immutable snapshot shared
 * with the cache (attribute values are deeply frozen: replace them with `set`, don't mutate them); writes
 * are kept as pending changes until `manager.updateSession(session)` stores them in one statement.
 */
export class Session<A extends Attributes = Attributes> {
  #record: SessionRecord;
  /** The token this session was loaded, created or last rotated through: every write is bound to it. */
  #token: string;
  // Made on the first write: most sessions are only read (a cache hit builds one per request).
  #changes: Map<string, AttributeChange> | undefined;
  #deleted: Set<string> | undefined;
  readonly #clock: () => number;
  readonly #maxAttributeLength: number;

  /** @internal Built by SessionManager. */
  constructor(record: SessionRecord, token: string, clock: () => number, maxAttributeLength: number) {
    this.#record = record;
    this.#token = token;
    this.#clock = clock;
    this.#maxAttributeLength = maxAttributeLength;
  }

  /** Internal id (UUID). Safe to show and log: it does not authenticate. */
  get id(): string {
    return this.#record.id;
  }
  get userId(): string {
    return this.#record.userId;
  }
  get groupId(): string | null {
    return this.#record.groupId;
  }
  /** Incremented by every stored change; `updateSession(s, { checkVersion: true })` compares it. */
  get version(): number {
    return this.#record.version;
  }
  get createdAt(): Date {
    return new Date(this.#record.createdAt);
  }
  get updatedAt(): Date {
    return new Date(this.#record.updatedAt);
  }
  /** Last access as stored (touches not yet flushed are not included). */
  get lastAccessedAt(): Date {
    return new Date(this.#record.lastAccessed);
  }
  get expiresAt(): Date {
    return new Date(this.#record.expiresAt);
  }
  /**
   * When the user last proved who they are: the sign-in that created the session, or the latest
   * `reauthenticate` (kept across `rotate`). See `authenticatedWithin` and the middleware's `requireFresh`.
   */
  get authenticatedAt(): Date {
    return new Date(this.#record.authenticatedAt);
  }

  /** The administrator's id when an administrator opened this session as its user, else null. */
  get impersonatedBy(): string | null {
    return this.#record.impersonatedBy;
  }

  /**
   * Whether the user proved who they are at most `maxAge` ms ago (by the manager's clock). No I/O. Never
   * true for an impersonation: the administrator is not the user, and cannot step up as them.
   */
  authenticatedWithin(maxAge: number): boolean {
    if (typeof maxAge !== 'number' || !(maxAge >= 0)) throw new InvalidArgumentError('maxAge', 'expected a number of milliseconds ≥ 0');
    return this.#record.impersonatedBy === null && this.#clock() - this.#record.authenticatedAt <= maxAge;
  }

  /** True when set/delete calls are waiting for `updateSession`. */
  get isModified(): boolean {
    return (this.#changes?.size ?? 0) > 0 || (this.#deleted?.size ?? 0) > 0;
  }

  #visible(a: AttributeRecord | AttributeChange | undefined): boolean {
    return a !== undefined && (a.expiresAt === null || a.expiresAt > this.#clock());
  }

  #current(key: string): AttributeRecord | AttributeChange | undefined {
    if (this.#deleted?.has(key) === true) return undefined;
    const a = this.#changes?.get(key) ?? this.#record.attributes.get(key);
    return this.#visible(a) ? a : undefined;
  }

  /** The attribute's value, or undefined when absent or expired. The value is frozen. */
  get<K extends keyof A & string>(key: K): A[K] | undefined {
    return this.#current(key)?.value as A[K] | undefined;
  }

  has(key: keyof A & string): boolean {
    return this.#current(key) !== undefined;
  }

  /**
   * Sets an attribute (validated now: a typed error, and no change, if it is not plain JSON or is larger
   * than maxAttributeLength). Stored by the next `updateSession`.
   */
  set<K extends keyof A & string>(key: K, value: A[K], options: SetAttributeOptions = {}): this {
    validateKey(key);
    const expiresAt = toMillis(options.expiresAt);
    const { json, frozen } = prepareValue(key, value, this.#maxAttributeLength);
    this.#deleted?.delete(key);
    this.#changes ??= new Map();
    this.#changes.set(key, { value: frozen, json, expiresAt });
    return this;
  }

  /** Deletes an attribute. Returns whether it was visible. Stored by the next `updateSession`. */
  delete(key: keyof A & string): boolean {
    validateKey(key);
    const was = this.#current(key) !== undefined;
    this.#changes?.delete(key);
    if (this.#record.attributes.has(key)) {
      this.#deleted ??= new Set();
      this.#deleted.add(key);
    }
    return was;
  }

  /** Names of the visible attributes. */
  keys(): (keyof A & string)[] {
    const out: string[] = [];
    const changes = this.#changes;
    for (const k of this.#record.attributes.keys()) if (changes?.has(k) !== true && this.#current(k)) out.push(k);
    if (changes !== undefined) for (const k of changes.keys()) if (this.#current(k)) out.push(k);
    return out as (keyof A & string)[];
  }

  /** A plain object of the visible attributes (values frozen). */
  toObject(): Partial<A> {
    const out = Object.create(null) as Record<string, unknown>;
    for (const k of this.keys()) out[k] = this.#current(k)?.value;
    return out as Partial<A>;
  }

  /** Version of one attribute as loaded (0 when it did not exist); bumped by each stored change of it. */
  attributeVersion(key: keyof A & string): number {
    return this.#record.attributes.get(key)?.version ?? 0;
  }

  /** Expiry of one attribute (null: none; undefined: not visible). */
  attributeExpiresAt(key: keyof A & string): Date | null | undefined {
    const a = this.#current(key);
    if (a === undefined) return undefined;
    return a.expiresAt === null ? null : new Date(a.expiresAt);
  }

  /** @internal */
  _pending(): { changes: ReadonlyMap<string, AttributeChange>; deleted: ReadonlySet<string>; record: SessionRecord } {
    return { changes: this.#changes ?? NO_CHANGES, deleted: this.#deleted ?? NO_DELETES, record: this.#record };
  }

  /** @internal The token writes through this session are bound to. Never serialized, never logged. */
  _token(): string {
    return this.#token;
  }

  /**
   * @internal After a successful update: the stored row becomes the base, pending changes are done.
   * After a rotation (`keepPending`, with the new `token`), the new base keeps the changes not yet stored.
   */
  _rebase(record: SessionRecord, options: { keepPending?: boolean; token?: string } = {}): void {
    this.#record = record;
    if (options.token !== undefined) this.#token = options.token;
    if (options.keepPending === true) return;
    this.#changes = undefined;
    this.#deleted = undefined;
  }

  toJSON(): { id: string; userId: string; groupId: string | null; version: number; expiresAt: string; attributes: Partial<A> } {
    return {
      id: this.id,
      userId: this.userId,
      groupId: this.groupId,
      version: this.version,
      expiresAt: this.expiresAt.toISOString(),
      attributes: this.toObject(),
    };
  }
}

const NO_CHANGES: ReadonlyMap<string, AttributeChange> = new Map();
const NO_DELETES: ReadonlySet<string> = new Set();

/** 0001-01-01T00:00:00.000Z .. 9999-12-31T23:59:59.999Z: beyond them toISOString() gives a form PostgreSQL rejects (or throws). */
const MIN_TIME = -62135596800000;
const MAX_TIME = 253402300799999;

export function toMillis(v: number | Date | undefined | null, name = 'expiresAt'): number | null {
  if (v === undefined || v === null) return null;
  const ms = v instanceof Date ? v.getTime() : v;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new InvalidArgumentError(name, 'expected a Date or ms since the epoch');
  if (ms < MIN_TIME || ms > MAX_TIME) throw new InvalidArgumentError(name, 'must be between the years 1 and 9999');
  return ms;
}
