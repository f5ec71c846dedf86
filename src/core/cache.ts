import { LRUCache } from 'lru-cache';
import type { AttributeRecord } from './attributes.ts';
import { knownVersion } from './versions.ts';

/** What the database holds for a session, as read at one moment. Immutable; shared by cache and sessions. */
export interface SessionRecord {
  /** Estimated heap bytes of the record (see `recordWeight`): what the cache's byte bound counts. */
  readonly size: number;
  readonly id: string;
  readonly userId: string;
  readonly groupId: string | null;
  readonly version: number;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly lastAccessed: number;
  readonly expiresAt: number;
  /** When the user last proved who they are (sign-in or reauthenticate), ms. */
  readonly authenticatedAt: number;
  /** The administrator's id when the session is an impersonation, else null. */
  readonly impersonatedBy: string | null;
  readonly attributes: ReadonlyMap<string, AttributeRecord>;
}

/**
 * Estimated heap bytes of a cached session, from the length of its row's JSON text and its attribute
 * count: V8 keeps one-byte strings at one byte per character and a parsed JSON value at about its text's
 * size; each attribute adds its record object and Map slot, each session its record, Session wrapper,
 * LRU node and id/token strings. Measured by the bench (section Memory: heap per cached session).
 */
export function recordWeight(jsonLength: number, attributeCount: number): number {
  return 1024 + jsonLength + 96 * attributeCount;
}

/**
 * The invalidations of one session id: the epoch of the latest one of unknown version, of the latest one
 * that named a version, and the highest version named. A fill started before `unknownAt`, or before
 * `knownAt` with a version below `floor`, may have read a row older than a change: it is dropped.
 */
interface Fence {
  unknownAt: number;
  knownAt: number;
  floor: number;
}

/** One cached session. */
export interface CacheEntry {
  readonly record: SessionRecord;
  /** Clock time just before the query that read it was sent: it reflects every commit before this. */
  readonly readAt: number;
  /**
   * The owner's per-session state (the manager keeps its access bookkeeping here), so a hit reaches it
   * without a second lookup. Starts undefined; dropped with the entry.
   */
  owner: object | undefined;
}

/**
 * The per-isolate session cache: an LRU keyed by token, an index from session id to token (the feed and
 * the worker speak in ids), and freshness bookkeeping.
 *
 * Freshness: a change committed at T must not be served after T + maxStaleness. An entry read at `readAt`
 * reflects every commit before `readAt`; the sync client calls `markFresh(W)` once it has applied every
 * change committed before W. An entry may be served at `now` only if max(readAt, W) ≥ now − maxStaleness.
 * Standalone (no sync client) that means: trusted for maxStaleness after the read.
 *
 * Races: a miss that reads a row while a change of that row is being invalidated must not put the old
 * row back. Every invalidation gets an epoch number; a fill carries the epoch at which its query started
 * and is dropped if that session (or the whole cache) was invalidated since.
 *
 * Versions: an invalidation may name the version the change left the session at (the feed's
 * `versions`, src/protocol.ts). An entry, or a fill, whose version is at least that already holds the
 * change, so it is kept: a process's own write is not evicted when the feed brings it back. A change is
 * recorded with its version only when it raised the version (drizzle/0018), so a row read before a change
 * yet holding at least the change's version exists only across a change of unknown version in between,
 * which committed first, is delivered no later, and drops it (or fences its fill off).
 */
export class SessionCache {
  readonly #lru: LRUCache<string, CacheEntry> | undefined;
  readonly #tokenById = new Map<string, string>();
  /** The latest invalidations per session id, kept for ids whether or not they are cached. */
  readonly #invalidatedAt: LRUCache<string, Fence>;
  /** Highest epoch that fell out of #invalidatedAt: a fill older than it cannot be checked, so it is dropped. */
  #forgottenEpoch = 0;
  #clearedEpoch = 0;
  #epoch = 0;
  #freshAsOf = Number.NEGATIVE_INFINITY;

  /**
   * `max`: most sessions cached (0: no cache). `maxBytes`: most estimated heap bytes they may take
   * (`SessionRecord.size`); a session larger than a quarter of it is not cached at all.
   */
  constructor(max: number, maxBytes = 32 * 1024 * 1024) {
    if (max > 0 && maxBytes > 0) {
      this.#lru = new LRUCache<string, CacheEntry>({
        max,
        maxSize: maxBytes,
        maxEntrySize: Math.max(1, Math.floor(maxBytes / 4)),
        sizeCalculation: (entry) => entry.record.size,
        dispose: (entry, token) => {
          if (this.#tokenById.get(entry.record.id) === token) this.#tokenById.delete(entry.record.id);
        },
      });
    }
    this.#invalidatedAt = new LRUCache<string, Fence>({
      max: Math.max(1024, max),
      dispose: (f) => {
        const epoch = Math.max(f.unknownAt, f.knownAt);
        if (epoch > this.#forgottenEpoch) this.#forgottenEpoch = epoch;
      },
    });
  }

  /** False with cacheSize 0 (nothing is ever cached, so nothing needs invalidating). */
  get enabled(): boolean {
    return this.#lru !== undefined;
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }

  /** Estimated heap bytes of the cached sessions. */
  get bytes(): number {
    return this.#lru?.calculatedSize ?? 0;
  }

  /** Current epoch; pass it to `fill` after the query returns. */
  begin(): number {
    return this.#epoch;
  }

  /**
   * The session cached for `token` if it is fresh enough to serve at `now`; otherwise undefined (no I/O either way).
   * @deprecated Unused by the library (the manager reads `entry`); kept because `SessionCache` is public.
   */
  get(token: string, now: number, maxStaleness: number): SessionRecord | undefined {
    return this.entry(token, now, maxStaleness)?.record;
  }

  /** The entry cached for `token` if it is fresh enough to serve at `now` (its record and its `owner` slot). */
  entry(token: string, now: number, maxStaleness: number): CacheEntry | undefined {
    const e = this.#lru?.get(token);
    if (e === undefined) return undefined;
    return Math.max(e.readAt, this.#freshAsOf) < now - maxStaleness ? undefined : e;
  }

  /** The session id cached for `token`, fresh or not (no I/O, no recency update). */
  idOf(token: string): string | undefined {
    return this.#lru?.peek(token)?.record.id;
  }

  /**
   * Stores a row read (or written) by a statement sent at `readAt`, after it committed. Dropped when the
   * session, or the whole cache, was invalidated after `startEpoch`. Returns whether it was stored.
   */
  fill(token: string, record: SessionRecord, readAt: number, startEpoch: number): boolean {
    if (this.#lru === undefined) return false;
    if (this.#changedSince(record, startEpoch)) return false;
    // Two misses of one session can return out of order: keep the newer row.
    const existing = this.#lru.peek(token);
    if (existing !== undefined && existing.record.version > record.version) return false;
    const previousToken = this.#tokenById.get(record.id);
    if (previousToken !== undefined && previousToken !== token) this.#lru.delete(previousToken);
    this.#lru.set(token, { record, readAt, owner: undefined });
    this.#tokenById.set(record.id, token);
    return true;
  }

  /**
   * Drops the entries of these session ids and fences off fills that started before now. With `versions`
   * (beside `ids`: the version each change left its session at, null or anything not an integer when
   * unknown), an entry or a fill holding at least that version is kept: it already has the change.
   */
  invalidate(ids: Iterable<string>, versions?: readonly unknown[]): void {
    const epoch = ++this.#epoch;
    let i = 0;
    for (const id of ids) {
      const version = knownVersion(versions?.[i++]) ?? undefined;
      this.#fence(id, epoch, version);
      const token = this.#tokenById.get(id);
      if (token === undefined) continue;
      if (version !== undefined && (this.#lru?.peek(token)?.record.version ?? Number.NEGATIVE_INFINITY) >= version) continue;
      this.#lru?.delete(token);
    }
  }

  /** Records an invalidation of `id` at `epoch`, of a change that left it at `version` (undefined: unknown). */
  #fence(id: string, epoch: number, version: number | undefined): void {
    const f = this.#invalidatedAt.get(id);
    if (f === undefined) {
      this.#invalidatedAt.set(
        id,
        version === undefined ? { unknownAt: epoch, knownAt: 0, floor: 0 } : { unknownAt: 0, knownAt: epoch, floor: version },
      );
    } else if (version === undefined) {
      f.unknownAt = epoch;
    } else {
      f.knownAt = epoch;
      if (version > f.floor) f.floor = version;
    }
  }

  /** Whether a row read by a statement sent at `startEpoch` may miss a change invalidated since. */
  #changedSince(record: SessionRecord, startEpoch: number): boolean {
    if (this.#clearedEpoch > startEpoch || this.#forgottenEpoch > startEpoch) return true;
    const f = this.#invalidatedAt.peek(record.id);
    return f !== undefined && (f.unknownAt > startEpoch || (f.knownAt > startEpoch && record.version < f.floor));
  }

  /**
   * After this process wrote a session with a statement sent at epoch `startEpoch` that proved `token`
   * current (it matched the row by the token's hash): drops the session's entries (fencing off older fills)
   * and caches the row the write returned under `token`, unless the session was invalidated after
   * `startEpoch`. Then a change newer than that row may already have been applied (the feed can deliver
   * another process's change before this write's answer is processed), and putting the row back would
   * serve it for as long as the feed stays fresh. The token is always the caller's: never one looked up by
   * the session's id, which may be a token rotated away since (it would come back to life).
   */
  refresh(record: SessionRecord, readAt: number, startEpoch: number, token: string): void {
    const changedSince = this.#changedSince(record, startEpoch);
    // As invalidate([record.id], [record.version]), except that an entry under `token` itself is left for
    // `fill` to replace: deleting the last entry of an lru-cache clears all its preallocated slots (~40 us at
    // cacheSize 10000). Fills that started before and read an older row are dropped.
    const epoch = ++this.#epoch;
    this.#fence(record.id, epoch, record.version);
    const cached = this.#tokenById.get(record.id);
    if (cached !== undefined && (changedSince || cached !== token)) this.#lru?.delete(cached);
    if (!changedSince) this.fill(token, record, readAt, epoch);
  }

  /** Drops the entry for one token (used when a token turns out to be dead). */
  invalidateToken(token: string): void {
    const e = this.#lru?.peek(token);
    if (e !== undefined) this.invalidate([e.record.id]);
  }

  /** Drops everything and fences off every fill in flight. */
  clear(): void {
    this.#clearedEpoch = ++this.#epoch;
    this.#lru?.clear();
    this.#tokenById.clear();
  }

  /**
   * The sync client's promise: every change committed before `asOf` (ms, same clock) has been passed to
   * `invalidate`/`clear`. Entries then stay servable until `asOf + maxStaleness`. Never moves backwards.
   */
  markFresh(asOf: number): void {
    if (asOf > this.#freshAsOf) this.#freshAsOf = asOf;
  }

  /** Forgets `markFresh` (the sync client lost its feed): entries fall back to their own read time. */
  resetFreshness(): void {
    this.#freshAsOf = Number.NEGATIVE_INFINITY;
  }

  get freshAsOf(): number {
    return this.#freshAsOf;
  }

  /** Ids currently cached (for tests and metrics). */
  ids(): string[] {
    return [...this.#tokenById.keys()];
  }
}
