/**
 * The version a change left its session at, as the change feed carries it (FeedResponse.versions in
 * src/protocol.ts, drizzle/0018): a cache may keep an entry whose version is at least that, since the entry
 * already holds the change (ARCHITECTURE.md, "Bounded staleness"). Null means unknown: a delete, a change that did
 * not move the version, a record written before drizzle/0018. Unknown always invalidates.
 */

/** One id's changes merged: unknown when any is unknown, else the highest version. */
export function mergeVersion(previous: number | null | undefined, version: number | null): number | null {
  if (previous === undefined) return version;
  if (previous === null || version === null) return null;
  return previous > version ? previous : version;
}

/** A version as the wire may carry it: a safe integer, anything else unknown (null). */
export function knownVersion(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

/** Changed ids, each once, with its merged version (feed reads and the host's answers from memory). */
export class ChangeSet {
  readonly #byId = new Map<string, number | null>();

  get size(): number {
    return this.#byId.size;
  }

  add(id: string, version: number | null): void {
    this.#byId.set(id, mergeVersion(this.#byId.get(id), version));
  }

  /** Every id of `ids`, with `versions[i]` beside it (absent or malformed: unknown). */
  addAll(ids: readonly string[], versions: readonly unknown[] | undefined): void {
    for (let i = 0; i < ids.length; i++) this.add(ids[i] as string, versions === undefined ? null : knownVersion(versions[i]));
  }

  ids(): string[] {
    return [...this.#byId.keys()];
  }

  /** The versions beside `ids()`, or undefined when none is known (the field is then left off the wire). */
  versions(): (number | null)[] | undefined {
    let known = false;
    const out: (number | null)[] = [];
    for (const v of this.#byId.values()) {
      if (v !== null) known = true;
      out.push(v);
    }
    return known ? out : undefined;
  }
}

/**
 * The versions of a feed answer, when it carries them beside its ids (same length); else undefined, and
 * every id is invalidated (an earlier worker, or an answer that does not line up).
 */
export function feedVersions(r: { ids: readonly string[]; versions?: unknown }): readonly unknown[] | undefined {
  return Array.isArray(r.versions) && r.versions.length === r.ids.length ? r.versions : undefined;
}
