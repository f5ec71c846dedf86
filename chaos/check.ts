// The checker: a pure function of a recorded history (chaos/types.ts) that returns every violation of the
// library's promises it can prove from the record, with evidence. Sound rather than complete: an
// operation that failed or timed out may or may not have taken effect, so it never counts as a change
// that must be seen, and it excuses what it could explain (a value it may have written, a session it may
// have deleted).
//
//   1 revoked-served / expired-served / wrong-session: a read that STARTED later than a revocation's END
//     (delete, delete-all, eviction by a create, rotation of that token) + maxStaleness returned the
//     session; or a read whose manager clock was at or past the session's expiry returned it (expiry is
//     checked on every read: no staleness allowance).
//   2 lost-update / stale-version / unknown-value / duplicate-version / cas-violated: attribute versions
//     order the writes of one key. A read that started after an acknowledged write's end + maxStaleness
//     must show that key at that write's version or a newer one (same for the session's version after an
//     update or rotation); a (key, version) pair must always carry the value its acknowledged write wrote;
//     a value must come from a write that may have committed (never from a compare-and-set that reported a
//     conflict); a compare-and-set that succeeded must have written exactly base version + 1.
//   3 lost-session: an acknowledged session that nothing acknowledged (or unacknowledged: a delete of it, a
//     delete-all of its user, a create that may have evicted it) could have removed, and that has not
//     expired, is in the final database snapshot, and a final forceRefresh read of its newest token finds it.
//   4 max-sessions: a capped user never has more than `cap` rows (periodic samples and the final snapshot).
//   5 last-access-backwards: each session's sampled last_accessed never decreases.
//   6 lost-touch / bogus-last-access: after the final flush, last_accessed ≥ the newest recorded touch
//     that was not within touchLossWindowMs before a SIGKILL of the worker the touching process used,
//     and ≤ the newest touch recorded at all (or the creation time).
//   7 feed-gap / feed-not-covered: for every change an acknowledged operation made, the observer's chain of
//     deliveries contains the session id (or a reset) in a delivery received after the change started and
//     no later than the first delivery whose freshAsOf is past the change's end.
//   untyped-error / crash: every failure is a typed SessionError or a timeout; no process dies unasked.
//   dead-token-write: an update, rotation or delete that succeeded through a token (a Session's, a cookie's)
//     that had been rotated away, or whose session had been revoked, before it STARTED — no staleness
//     allowance, the statement itself must refuse — or (update, rotate) whose session had expired by the
//     writer's own clock.
//   idle-revived / bogus-last-access: a short-idle session returned by a read whose clock was at or past
//     inactivityDuration after every access that could have reached that reader (its creation, the touches
//     of reads that returned it, and injected touches that may legitimately have landed); a stored
//     last_accessed (sampled or final) newer than every such access.
//
// Clocks. The history is on one reference clock (the runner's; every process of the machine reads the same
// OS clock through performance.timeOrigin + performance.now()). Each app process's library clock runs
// `clockSkewMs[proc]` ahead of it. The library's expiry promises are defined on the clock of the process that
// judges: absolute expiry compares the reader's (or writer's) own clock with expires_at (a value the creator
// computed on its clock), idle expiry compares it with the newest known last access (values of the touching
// processes' clocks, clamped by the receiver of the touch to its own). So expired-served, dead-token-write
// (expiry) and idle-revived compare the process's recorded clock value — or, when only the reference times are
// known (HTTP), [start, end] + its skew — with those stored values, never with reference time. Staleness and
// ordering (revoked-served, stale-version, lost-update, feed) compare reference times: maxStaleness is a
// duration on one process's clock, which a constant skew does not change.
import type { CreateOp, Delivery, History, Op, Pool, ReadOp, RotateOp, TouchOp, UpdateOp, Violation, ViolationKind } from './types.ts';

export interface CheckStats {
  /** Reads that returned a session, and how many of them were late enough to be judged for freshness. */
  readsFound: number;
  /** Reads that started after their token was revoked, rotated away or expired (+ maxStaleness). */
  readsJudgedAfterRevocation: number;
  /** The same, during the load (the rest are the final verification reads). */
  readsJudgedAfterRevocationInLoad: number;
  readsJudgedForVersions: number;
  casUpdatesChecked: number;
  sessionsVerifiedAlive: number;
  sessionsExcused: number;
  /** Updates, rotations and deletes sent through a token that was already rotated away, revoked or expired. */
  writesThroughDeadTokens: number;
  /** The same, that went through the HTTP middleware (a stale cookie). */
  writesThroughDeadCookies: number;
  /** Reads of short-idle sessions made when every known access was more than inactivityDuration old. */
  readsJudgedIdle: number;
  /** Injected touches, and those the receiver had to drop (the session was idle-expired when they arrived). */
  touchesInjected: number;
  touchesMustDrop: number;
  lastAccessSeries: number;
  touchSessionsChecked: number;
  touchesAtRisk: number;
  changesChecked: number;
}

export interface CheckResult {
  /** Every violation with evidence, at most MAX_PER_KIND of a kind (then one line saying more were left out). */
  violations: Violation[];
  /** How many violations of each kind were found (all of them). */
  counts: Partial<Record<ViolationKind, number>>;
  stats: CheckStats;
}

const MAX_PER_KIND = 200;

/** A short form of an operation for evidence. */
export function brief(op: Op): Record<string, unknown> {
  const o: Record<string, unknown> = { kind: op.kind, proc: op.proc, seq: op.seq, start: +op.start.toFixed(1), end: +op.end.toFixed(1) };
  if (op.status !== 'ok') {
    o.status = op.status;
    if (op.code) o.code = op.code;
    if (op.error) o.error = op.error;
  }
  if ('sid' in op && op.sid) o.sid = op.sid;
  if ('user' in op) o.user = op.user;
  if (op.via) o.via = op.via;
  if (op.kind === 'read') {
    o.force = op.force;
    o.origin = op.origin;
  }
  if (op.kind === 'touch') {
    o.target = op.target;
    o.value = op.value;
    o.recv = [+op.recvLo.toFixed(1), +op.recvHi.toFixed(1)];
  }
  if ('held' in op && op.held) o.held = true;
  if ('bySession' in op && op.bySession) o.bySession = true;
  if (op.kind === 'update') {
    o.mode = op.mode;
    o.values = op.values;
    o.base = op.base;
  }
  if ('result' in op && op.result) o.result = op.result;
  if ('token' in op) o.token = `${String(op.token).slice(0, 8)}…`;
  return o;
}

interface AckedWrite {
  end: number;
  version: number;
  vers: Map<string, { ver: number; value: string }>;
  op: Op;
}

interface Change {
  sid: string;
  start: number;
  end: number;
  op: Op;
}

/** The list stored under `key`, created empty when missing. */
function listIn<K, V>(m: Map<K, V[]>, key: K): V[] {
  let l = m.get(key);
  if (l === undefined) {
    l = [];
    m.set(key, l);
  }
  return l;
}

/** Index of the first element with key(x) > t in an array sorted by key (binary search). */
function firstAfter<T>(xs: readonly T[], t: number, key: (x: T) => number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (key(xs[mid] as T) > t) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function checkHistory(h: History): CheckResult {
  const cfg = h.config;
  const stale = cfg.maxStalenessMs;
  const slack = cfg.clockSlackMs;
  const capped = new Set(cfg.cappedUsers);
  const violations: Violation[] = [];
  const perKind = new Map<ViolationKind, number>();
  const violate = (kind: ViolationKind, message: string, evidence?: unknown) => {
    const n = (perKind.get(kind) ?? 0) + 1;
    perKind.set(kind, n);
    if (n <= MAX_PER_KIND) violations.push({ kind, message, evidence });
    else if (n === MAX_PER_KIND + 1) violations.push({ kind, message: `more ${kind} violations left out` });
  };
  const stats: CheckStats = {
    readsFound: 0,
    readsJudgedAfterRevocation: 0,
    readsJudgedAfterRevocationInLoad: 0,
    readsJudgedForVersions: 0,
    casUpdatesChecked: 0,
    sessionsVerifiedAlive: 0,
    sessionsExcused: 0,
    writesThroughDeadTokens: 0,
    writesThroughDeadCookies: 0,
    readsJudgedIdle: 0,
    touchesInjected: 0,
    touchesMustDrop: 0,
    lastAccessSeries: 0,
    touchSessionsChecked: 0,
    touchesAtRisk: 0,
    changesChecked: 0,
  };

  const ops = [...h.ops].sort((a, b) => a.start - b.start || a.proc - b.proc || a.seq - b.seq);
  const acked = (op: Op) => op.status === 'ok';
  const skewOf = (proc: number) => cfg.clockSkewMs?.[proc] ?? 0;
  /** The reading process's library clock during a read: exact when recorded, else [start, end] + its skew. */
  const readClock = (op: ReadOp): { lo: number; hi: number } => {
    const at = op.result?.clockAt;
    if (at !== undefined) return { lo: at, hi: at };
    const k = skewOf(op.proc);
    return { lo: op.start + k - slack, hi: op.end + k + slack };
  };
  /** The access a read recorded (its touch), on its process's clock; undefined when it recorded none. */
  const touchRange = (op: ReadOp): { lo: number; hi: number } | undefined => {
    if (op.status !== 'ok' || !op.result?.found) return undefined;
    const t = op.result.touchAt;
    if (t !== undefined) return { lo: t, hi: t };
    return op.via === 'http' && op.touch ? readClock(op) : undefined;
  };
  /** Failed in a way that says nothing about whether the statement committed. */
  const unknownOutcome = (op: Op) =>
    op.status === 'timeout' || (op.status === 'error' && op.code !== 'VERSION_CONFLICT' && op.code !== 'SESSION_NOT_FOUND');

  // ---- untyped errors ---------------------------------------------------------------------------------
  for (const op of ops) {
    if (op.status === 'error' && op.code === undefined)
      violate('untyped-error', `${op.kind} failed with an untyped error: ${op.error}`, brief(op));
  }
  for (const e of h.processEvents) {
    if (e.kind === 'unexpected-exit' || e.kind === 'unclean-stop') violate('crash', `${e.process}: ${e.kind}: ${e.detail}`, e);
  }

  // ---- what the acknowledged operations established ---------------------------------------------------
  interface SessionInfo {
    sid: string;
    user: string;
    create: CreateOp;
    expiresAt: number;
    pool: Pool | undefined;
    /** inactivityDuration of its pool's managers (0: no idle expiry within the run). */
    idleMs: number;
  }
  const sessions = new Map<string, SessionInfo>();
  const tokenSession = new Map<string, string>();
  const rotatedAway = new Map<string, RotateOp>();
  const nextToken = new Map<string, string>();
  const revoked = new Map<string, { at: number; why: string; op: Op }>();
  const writes = new Map<string, AckedWrite[]>();
  const changes: Change[] = [];
  const revoke = (sid: string, at: number, why: string, op: Op) => {
    const cur = revoked.get(sid);
    if (cur === undefined || at < cur.at) revoked.set(sid, { at, why, op });
    changes.push({ sid, start: op.start, end: op.end, op });
  };
  const addWrite = (sid: string, w: AckedWrite) => {
    listIn(writes, sid).push(w);
  };

  for (const op of ops) {
    if (!acked(op)) continue;
    if (op.kind === 'create' && op.result) {
      const r = op.result;
      sessions.set(r.id, { sid: r.id, user: op.user, create: op, expiresAt: op.expiresAt, pool: op.pool, idleMs: op.idleMs ?? 0 });
      tokenSession.set(r.token, r.id);
      const vers = new Map<string, { ver: number; value: string }>();
      for (const [k, v] of Object.entries(op.attrs)) vers.set(k, { ver: 1, value: v });
      addWrite(r.id, { end: op.end, version: r.version, vers, op });
      for (const id of r.evicted) revoke(id, op.end, 'evicted by a create (maxSessions)', op);
    } else if (op.kind === 'update' && op.result) {
      const vers = new Map<string, { ver: number; value: string }>();
      for (const [k, v] of Object.entries(op.values)) vers.set(k, { ver: op.result.vers[k] ?? 0, value: v });
      addWrite(op.sid, { end: op.end, version: op.result.version, vers, op });
      changes.push({ sid: op.sid, start: op.start, end: op.end, op });
    } else if (op.kind === 'rotate' && op.result?.rotated && op.result.newToken) {
      // The first rotation away counts (a later one through the same dead token is itself a violation).
      const prev = rotatedAway.get(op.token);
      if (prev === undefined || op.end < prev.end) rotatedAway.set(op.token, op);
      tokenSession.set(op.result.newToken, op.sid);
      nextToken.set(op.token, op.result.newToken);
      addWrite(op.sid, { end: op.end, version: op.result.version ?? 0, vers: new Map(), op });
      changes.push({ sid: op.sid, start: op.start, end: op.end, op });
    } else if (op.kind === 'delete' && op.result) {
      for (const id of op.result.ids) revoke(id, op.end, 'deleted', op);
    } else if (op.kind === 'deleteAll' && op.result) {
      for (const id of op.result.ids) revoke(id, op.end, 'deleted with all the user’s sessions', op);
    }
  }

  // (sid, key, version) → value of the acknowledged write; values unacknowledged writes may have stored.
  const valueAt = new Map<string, { value: string; op: Op }>();
  const versionOwner = new Map<string, Op>();
  for (const [sid, list] of writes) {
    for (const w of list) {
      const vk = `${sid}|${w.version}`;
      const prev = versionOwner.get(vk);
      if (prev !== undefined && prev !== w.op)
        violate('duplicate-version', `two acknowledged writes of session ${sid} produced version ${w.version}`, [brief(prev), brief(w.op)]);
      versionOwner.set(vk, w.op);
      for (const [k, { ver, value }] of w.vers) {
        const key = `${sid}|${k}|${ver}`;
        const p = valueAt.get(key);
        if (p !== undefined && p.op !== w.op)
          violate('duplicate-version', `two acknowledged writes of ${sid}.${k} produced attribute version ${ver}`, [
            brief(p.op),
            brief(w.op),
          ]);
        valueAt.set(key, { value, op: w.op });
      }
    }
  }
  const mayHaveWritten = new Map<string, UpdateOp>();
  const refused = new Map<string, UpdateOp>();
  for (const op of ops) {
    if (op.kind !== 'update' || op.status === 'ok') continue;
    for (const [k, v] of Object.entries(op.values)) {
      if (unknownOutcome(op)) mayHaveWritten.set(`${op.sid}|${k}|${v}`, op);
      else refused.set(`${op.sid}|${k}|${v}`, op);
    }
  }

  // ---- 2: compare-and-set -------------------------------------------------------------------------------
  for (const op of ops) {
    if (op.kind !== 'update' || !op.result) continue;
    if (op.mode === 'version') {
      stats.casUpdatesChecked++;
      if (op.result.version !== op.base.version + 1)
        violate(
          'cas-violated',
          `checkVersion update of ${op.sid} succeeded from version ${op.base.version} but wrote ${op.result.version}`,
          brief(op),
        );
    }
    for (const k of Object.keys(op.values)) {
      const b = op.base.vers[k] ?? 0;
      const r = op.result.vers[k] ?? 0;
      if (op.mode === 'attrVersion') {
        stats.casUpdatesChecked++;
        if (r !== b + 1)
          violate('cas-violated', `checkAttributeVersion update of ${op.sid}.${k} succeeded from version ${b} but wrote ${r}`, brief(op));
      } else if (r < b + 1) {
        violate('stale-version', `update of ${op.sid}.${k} from version ${b} wrote version ${r}`, brief(op));
      }
    }
  }

  // Per session: acknowledged writes by end time, with running maxima (what a late read must reflect).
  interface Prefix {
    ends: number[];
    version: number[];
    versionOp: Op[];
    keys: Map<string, { ver: number; value: string; op: Op }>[];
  }
  const prefixes = new Map<string, Prefix>();
  for (const [sid, list] of writes) {
    list.sort((a, b) => a.end - b.end);
    const p: Prefix = { ends: [], version: [], versionOp: [], keys: [] };
    let maxV = 0;
    let maxOp: Op | undefined;
    let keys = new Map<string, { ver: number; value: string; op: Op }>();
    for (const w of list) {
      if (w.version > maxV) {
        maxV = w.version;
        maxOp = w.op;
      }
      keys = new Map(keys);
      for (const [k, v] of w.vers) {
        const cur = keys.get(k);
        if (cur === undefined || v.ver > cur.ver) keys.set(k, { ...v, op: w.op });
      }
      p.ends.push(w.end);
      p.version.push(maxV);
      p.versionOp.push(maxOp as Op);
      p.keys.push(keys);
    }
    prefixes.set(sid, p);
  }

  // ---- 1: reads of revoked tokens and sessions --------------------------------------------------------------
  // The moment a token stopped being valid: its rotation, its session's revocation, or its session's expiry.
  const deadline = (token: string, sid: string | undefined) => {
    let t = Number.POSITIVE_INFINITY;
    let why = '';
    let by: Op | undefined;
    const rot = rotatedAway.get(token);
    if (rot !== undefined && rot.end < t) [t, why, by] = [rot.end, 'rotated away', rot];
    const rev = sid === undefined ? undefined : revoked.get(sid);
    if (rev !== undefined && rev.at < t) [t, why, by] = [rev.at, rev.why, rev.op];
    return { t, why, by };
  };
  for (const op of ops) {
    if (op.kind !== 'read' || op.status !== 'ok' || !op.result) continue;
    const r = op.result;
    const sid = tokenSession.get(op.token) ?? op.sid;
    const dead = deadline(op.token, sid);
    const s = sid === undefined ? undefined : sessions.get(sid);
    const judged = op.start > dead.t + stale + slack;
    // Expiry is checked on every read against the reader's own clock (recorded, or the reference time + its
    // skew), not against reference time: a reader whose clock is behind legitimately serves a session longer.
    const expired = s !== undefined && readClock(op).lo >= s.expiresAt;
    if (judged || expired) {
      stats.readsJudgedAfterRevocation++;
      if (op.phase === 'load') stats.readsJudgedAfterRevocationInLoad++;
    }
    if (!r.found) continue;
    const got = r.id as string;
    if (sid !== undefined && sid !== got) violate('wrong-session', `token of ${sid} returned session ${got}`, brief(op));
    if (judged)
      violate(
        'revoked-served',
        `read started ${(op.start - dead.t).toFixed(0)} ms after the token was ${dead.why} and returned session ${got}`,
        { read: brief(op), revocation: dead.by ? brief(dead.by) : undefined },
      );
    if (expired)
      violate(
        'expired-served',
        `read of ${got} at ${r.clockAt ?? `≥ ${readClock(op).lo.toFixed(0)}`} (its manager's clock) returned it; it expired at ${(s as SessionInfo).expiresAt}`,
        {
          read: brief(op),
          expiresAt: (s as SessionInfo).expiresAt,
        },
      );
  }

  // ---- dead tokens: a write through a token that was dead when the write began must not succeed -----------
  for (const op of ops) {
    if (op.kind !== 'update' && op.kind !== 'rotate' && op.kind !== 'delete') continue;
    const sid = tokenSession.get(op.token) ?? op.sid;
    const dead = deadline(op.token, sid);
    const s = sid === undefined ? undefined : sessions.get(sid);
    const clockLo = op.kind === 'delete' ? undefined : (op.clockAt ?? op.start + skewOf(op.proc) - slack);
    // Deleting an expired session is allowed; updating or rotating it is not (the statement checks expiry).
    const expired = s !== undefined && clockLo !== undefined && clockLo >= s.expiresAt;
    const afterDeath = op.start > dead.t + slack;
    if (!afterDeath && !expired) continue;
    stats.writesThroughDeadTokens++;
    if (op.via === 'http') stats.writesThroughDeadCookies++;
    if (op.status !== 'ok') continue;
    const succeeded =
      (op.kind === 'update' && op.result !== undefined) ||
      (op.kind === 'rotate' && op.result?.rotated === true) ||
      (op.kind === 'delete' && (op.result?.ids.length ?? 0) > 0);
    if (!succeeded) continue;
    const what = op.kind === 'update' ? 'an update' : op.kind === 'rotate' ? 'a rotation' : 'a delete';
    violate(
      'dead-token-write',
      afterDeath
        ? `${what}${op.via === 'http' ? ' (HTTP, stale cookie)' : ''} succeeded through a token that was ${dead.why} ${(op.start - dead.t).toFixed(0)} ms before it began`
        : `${what} succeeded at ${(clockLo as number).toFixed(0)} (its writer's clock), after the session expired at ${(s as SessionInfo).expiresAt}`,
      { write: brief(op), death: afterDeath && dead.by ? brief(dead.by) : undefined },
    );
  }

  // ---- 2: every read that returned a session reflects the writes acknowledged before it -------------------
  for (const op of ops) {
    if (op.kind !== 'read' || op.status !== 'ok' || !op.result?.found) continue;
    const r = op.result;
    const sid = r.id as string;
    stats.readsFound++;
    // values must come from writes
    const attrs = r.attrs ?? {};
    for (const [k, [value, ver]] of Object.entries(attrs)) {
      const known = valueAt.get(`${sid}|${k}|${ver}`);
      if (known !== undefined) {
        if (known.value !== value)
          violate(
            'unknown-value',
            `read of ${sid}.${k} at version ${ver} returned ${value}; the acknowledged write of that version wrote ${known.value}`,
            {
              read: brief(op),
              write: brief(known.op),
            },
          );
      } else if (!mayHaveWritten.has(`${sid}|${k}|${value}`)) {
        const no = refused.get(`${sid}|${k}|${value}`);
        if (no !== undefined)
          violate(
            no.code === 'VERSION_CONFLICT' ? 'cas-violated' : 'unknown-value',
            `read of ${sid}.${k} returned ${value}, written by an update that reported ${no.code} (nothing written)`,
            { read: brief(op), update: brief(no) },
          );
        else
          violate(
            'unknown-value',
            `read of ${sid}.${k} returned ${value} at version ${ver}, which no operation could have written`,
            brief(op),
          );
      }
    }
    // freshness of versions
    const p = prefixes.get(sid);
    if (p === undefined) continue;
    const i = firstAfter(p.ends, op.start - stale - slack, (x) => x) - 1;
    if (i < 0) continue;
    stats.readsJudgedForVersions++;
    const needV = p.version[i] as number;
    if ((r.version ?? 0) < needV)
      violate(
        'stale-version',
        `read of ${sid} returned version ${r.version}, but version ${needV} was acknowledged more than maxStaleness before the read started`,
        { read: brief(op), write: brief(p.versionOp[i] as Op) },
      );
    for (const [k, need] of p.keys[i] as Map<string, { ver: number; value: string; op: Op }>) {
      const got = attrs[k];
      const gotVer = got?.[1] ?? 0;
      if (gotVer < need.ver)
        violate(
          'lost-update',
          `read of ${sid}.${k} returned ${got ? `${got[0]} (version ${gotVer})` : 'nothing'}, but ${need.value} (version ${need.ver}) was acknowledged ${(op.start - need.op.end).toFixed(0)} ms before the read started`,
          { read: brief(op), write: brief(need.op) },
        );
    }
  }

  // ---- 3: acknowledged sessions are still there -------------------------------------------------------
  const finalRows = new Map(h.final.sessions.map((s) => [s.id, s]));
  const finalForce = new Map<string, ReadOp>();
  for (const op of ops) if (op.kind === 'read' && op.phase === 'final' && op.force) finalForce.set(op.token, op);
  const latestToken = (first: string) => {
    let t = first;
    for (let n = 0; n < 100_000 && nextToken.has(t); n++) t = nextToken.get(t) as string;
    return t;
  };
  const uncertain = new Map<string, string>(); // sid → why an unacknowledged op may have removed it or changed its token
  for (const op of ops) {
    if (!unknownOutcome(op)) continue;
    if (op.kind === 'delete') {
      const sid = tokenSession.get(op.token) ?? op.sid;
      if (sid) uncertain.set(sid, 'a delete of it has an unknown outcome');
    } else if (op.kind === 'rotate') uncertain.set(op.sid, 'rotate-unknown');
  }
  const unknownByUser = new Map<string, Op[]>();
  for (const op of ops) {
    if (!unknownOutcome(op)) continue;
    if (op.kind === 'deleteAll' || (op.kind === 'create' && capped.has(op.user))) {
      listIn(unknownByUser, op.user).push(op);
    }
  }
  for (const s of sessions.values()) {
    // Short-idle sessions may idle-expire (and be cleaned up) legitimately: their survival is not promised.
    if (revoked.has(s.sid) || s.expiresAt <= h.final.at + slack || s.idleMs > 0) continue;
    const why = uncertain.get(s.sid);
    // A statement whose answer was lost may still commit later (the backend finishes it), whenever it began.
    const byUser = unknownByUser.get(s.user)?.[0];
    if ((why !== undefined && why !== 'rotate-unknown') || byUser !== undefined) {
      stats.sessionsExcused++;
      continue;
    }
    stats.sessionsVerifiedAlive++;
    if (!finalRows.has(s.sid)) {
      violate('lost-session', `acknowledged session ${s.sid} (user ${s.user}) is missing from the database at the end`, brief(s.create));
      continue;
    }
    if (why === 'rotate-unknown') continue; // its newest token is unknown; the row is there
    const token = latestToken((s.create.result as NonNullable<CreateOp['result']>).token);
    const read = finalForce.get(token);
    // Expired by the clock of the process that made the final read (a clock ahead of the creator's).
    if (read !== undefined && readClock(read).hi >= s.expiresAt) continue;
    if (read !== undefined && read.status === 'ok' && !(read.result?.found && read.result.id === s.sid))
      violate('lost-session', `final forceRefresh read of ${s.sid}'s newest token did not return it`, brief(read));
  }

  // ---- 4: max sessions ----------------------------------------------------------------------------------
  const finalCounts = new Map<string, number>();
  for (const row of h.final.sessions) finalCounts.set(row.userId, (finalCounts.get(row.userId) ?? 0) + 1);
  for (const u of capped) {
    const n = finalCounts.get(u) ?? 0;
    if (n > cfg.cap) violate('max-sessions', `user ${u} has ${n} sessions at the end (cap ${cfg.cap})`);
  }
  for (const c of h.counts) {
    if (capped.has(c.user) && c.count > cfg.cap) violate('max-sessions', `user ${c.user} had ${c.count} sessions (cap ${cfg.cap})`, c);
  }

  // ---- 5: last access never moves backwards ----------------------------------------------------------------
  const lastSeen = new Map<string, { at: number; la: number }>();
  for (const s of h.samples) {
    const prev = lastSeen.get(s.id);
    if (prev === undefined) stats.lastAccessSeries++;
    else if (s.lastAccessed < prev.la)
      violate('last-access-backwards', `last_accessed of ${s.id} went from ${prev.la} to ${s.lastAccessed}`, { before: prev, after: s });
    if (prev === undefined || s.lastAccessed >= prev.la) lastSeen.set(s.id, { at: s.at, la: s.lastAccessed });
  }

  // ---- accesses: what may be stored as a session's last_accessed, and what each read may know of -----------
  // Every stored last_accessed comes from an access: the creation, a touch a read recorded (on its process's
  // clock; a receiver may clamp it lower, to its own clock), or an injected touch the receiver did not have to
  // drop. Per session, by start time, with the value's upper bound.
  interface Access {
    start: number;
    hi: number;
    op: Op;
  }
  const accesses = new Map<string, Access[]>();
  for (const op of ops) {
    if (op.kind === 'create' && op.status === 'ok' && op.result) {
      listIn(accesses, op.result.id).push({ start: op.start, hi: op.result.at, op });
    } else if (op.kind === 'read') {
      const t = touchRange(op);
      if (t !== undefined) listIn(accesses, op.result?.id as string).push({ start: op.start, hi: t.hi, op });
      else if (op.status === 'timeout' && op.touch) {
        // No answer: it may still have found the session and touched it. A library read's touch is its
        // manager's clock when the call began (before the timeout); an HTTP server may read after the client
        // gave up, on a clock ahead of everyone's, so only the receiver's clamp bounds what it stored.
        const sid = tokenSession.get(op.token) ?? op.sid;
        const hi = op.via === 'http' ? Number.POSITIVE_INFINITY : op.end + skewOf(op.proc) + slack;
        if (sid !== undefined) listIn(accesses, sid).push({ start: op.start, hi, op });
      }
    }
  }
  const W = cfg.touchLossWindowMs;
  // Reads of a short-idle session that found it although no access but an injected touch can explain it: if
  // one is wrong, so is the touch that revived it, so neither its own touch nor its finding counts below.
  const newestOther = (sid: string, t: number, except: Op): number => {
    let m = Number.NEGATIVE_INFINITY;
    for (const a of accesses.get(sid) ?? []) if (a.op !== except && a.start < t && a.hi > m) m = a.hi;
    return m;
  };
  const suspect = new Set<Op>();
  for (const op of ops) {
    if (op.kind !== 'read' || op.status !== 'ok' || !op.result?.found) continue;
    const s = sessions.get(op.result.id as string);
    if (s !== undefined && s.idleMs > 0 && readClock(op).lo >= newestOther(s.sid, op.end, op) + s.idleMs) suspect.add(op);
  }
  // Injected touches (the runner sends at most one per session). A receiver drops a touch whose clamped time
  // is not before the stored last access + inactivityDuration; the stored value is at most the newest honest
  // access begun before the touch was flushed (within the touch loss window of its arrival). A worker also
  // writes a touch merged into a run of honest touches of that session pushed to it in that window when the
  // run's first access passes that test (an honest touch's clamped time is at least its read's start): then
  // the injected touch may land too.
  const injections: { op: TouchOp; hi: number }[] = [];
  for (const op of ops) {
    if (op.kind !== 'touch') continue;
    stats.touchesInjected++;
    const s = sessions.get(op.sid);
    const list = (accesses.get(op.sid) ?? []).filter((a) => !suspect.has(a.op));
    const idle = s?.idleMs ?? 0;
    let newest = Number.NEGATIVE_INFINITY;
    for (const a of list) if (a.start < op.end + W && a.hi > newest) newest = a.hi;
    // The receiver clamps the run's first access to its clock, and a worker to no earlier than its arrival
    // minus touchMaxHold: the lowest first access it can have tested.
    const claimed = Math.min(op.first ?? op.value, op.value, op.recvLo);
    const first = op.target === 'worker' ? Math.max(claimed, op.recvLo - (cfg.touchMaxHoldMs ?? Number.POSITIVE_INFINITY)) : claimed;
    let merged = false;
    if (op.target === 'worker') {
      for (const a of list) {
        if (a.op.kind !== 'read' || (cfg.procWorker[a.op.proc] ?? -1) === -1) continue;
        if (a.start < op.start - W || a.start > op.end + W) continue;
        // A read without an answer may have touched at any time its call could read the clock.
        const t = touchRange(a.op) ?? { lo: a.start + skewOf(a.op.proc) - slack, hi: a.hi };
        // A worker with touchMaxHold joins two runs only when continuous: the injected one must begin within
        // the idle timeout of the honest one's last access (at most t.hi, as the receiver clamps it).
        const continuous = cfg.touchMaxHoldMs === undefined || first < t.hi + idle + slack;
        if (continuous && Math.min(t.lo, a.start - slack) < newest + idle + slack) merged = true;
      }
    }
    const mayLand = s === undefined || idle === 0 || first < newest + idle + slack || merged;
    if (!mayLand) stats.touchesMustDrop++;
    // A POST the runner gave up on may still be handled by the worker later, clamped to its clock then.
    else if (op.status === 'timeout' && op.target === 'worker') injections.push({ op, hi: op.value });
    else injections.push({ op, hi: Math.min(op.value, op.recvHi) });
  }
  for (const { op, hi } of injections) listIn(accesses, op.sid).push({ start: op.start, hi, op });
  // By start, with the running maximum of the values: the newest access begun before a given time.
  const accessMax = new Map<string, { starts: number[]; max: number[] }>();
  for (const [sid, list] of accesses) {
    list.sort((a, b) => a.start - b.start);
    const starts: number[] = [];
    const max: number[] = [];
    let m = Number.NEGATIVE_INFINITY;
    for (const a of list) {
      if (a.hi > m) m = a.hi;
      starts.push(a.start);
      max.push(m);
    }
    accessMax.set(sid, { starts, max });
  }
  const newestBefore = (sid: string, t: number): number => {
    const a = accessMax.get(sid);
    if (a === undefined) return Number.NEGATIVE_INFINITY;
    const i = firstAfter(a.starts, t - 1e-9, (x) => x) - 1;
    // firstAfter finds the first start > t - ε: everything before it started before t.
    return i < 0 ? Number.NEGATIVE_INFINITY : (a.max[i] as number);
  };

  // ---- idle: a short-idle session is never served once every access it could know of is idle-old ---------
  for (const op of ops) {
    if (op.kind !== 'read' || op.status !== 'ok' || !op.result) continue;
    const sid = op.result.found ? (op.result.id as string) : (tokenSession.get(op.token) ?? op.sid);
    const s = sid === undefined ? undefined : sessions.get(sid);
    if (s === undefined || s.idleMs === 0) continue;
    // The newest access begun before this read ended, other than this read's own touch.
    let known = Number.NEGATIVE_INFINITY;
    for (const a of accesses.get(s.sid) ?? []) if (a.op !== op && a.start < op.end && a.hi > known) known = a.hi;
    const c = readClock(op).lo;
    if (c < known + s.idleMs) continue;
    stats.readsJudgedIdle++;
    if (op.result.found)
      violate(
        'idle-revived',
        `read at ${c.toFixed(0)} (its manager's clock) returned ${s.sid}, idle-expired since ${(known + s.idleMs).toFixed(0)}: no access it could know of is newer than ${known.toFixed(0)} (inactivityDuration ${s.idleMs} ms)`,
        { read: brief(op) },
      );
  }

  // ---- 6: touches ---------------------------------------------------------------------------------------
  // A sampled last_accessed is never newer than every access begun before the sample was read: before its
  // answer came (the snapshot lies somewhere between the query and its answer, and a touch flushed in that
  // time may come from an access begun after the query was sent).
  for (const sm of h.samples) {
    if (!sessions.has(sm.id)) continue;
    const upper = newestBefore(sm.id, sm.end ?? sm.at);
    if (sm.lastAccessed > upper + 0.5)
      violate(
        'bogus-last-access',
        `sampled last_accessed of ${sm.id} is ${sm.lastAccessed}, newer than any access begun before the sample (${upper})`,
        sm,
      );
  }
  const kills = new Map<number, number[]>();
  const addKill = (w: number, at: number) => {
    listIn(kills, w).push(at);
  };
  for (const f of h.faults) if (f.kind === 'worker-sigkill' && f.target !== undefined) addKill(f.target, f.start);
  for (const e of h.processEvents) if (e.worker !== undefined) addKill(e.worker, e.at); // crashes and forced stops lose touches too
  // at: lower bound of the value a receiver stores; ref: when it was made (reference clock).
  const touches = new Map<string, { at: number; ref: number; proc: number }[]>();
  for (const op of ops) {
    if (op.kind !== 'read') continue;
    const t = touchRange(op);
    if (t === undefined) continue;
    // A receiver clamps a touch to its own clock, which read it later than the read started: the stored
    // value is at least the touch's time or the read's start (reference clock), whichever is lower.
    listIn(touches, op.result?.id as string).push({ at: Math.min(t.lo, op.start - slack), ref: op.start, proc: op.proc });
  }
  for (const row of h.final.sessions) {
    const s = sessions.get(row.id);
    if (s === undefined) continue;
    stats.touchSessionsChecked++;
    const upper = newestBefore(row.id, h.final.at);
    if (row.lastAccessed > upper + 0.5)
      violate('bogus-last-access', `last_accessed of ${row.id} is ${row.lastAccessed}, newer than any access recorded (${upper})`, row);
    // A short-idle session's touch is dropped by design when its run began after the stored idle timeout, and
    // which run that was depends on clocks and on touches a killed worker lost: no lower bound for those.
    if (s.idleMs > 0) continue;
    const created = (s.create.result as NonNullable<CreateOp['result']>).at;
    let lower = created;
    let lowerFrom: unknown = 'creation';
    for (const t of touches.get(row.id) ?? []) {
      const w = cfg.procWorker[t.proc] ?? -1;
      const atRisk = (kills.get(w) ?? []).some((k) => k >= t.ref - slack && k <= t.ref + cfg.touchLossWindowMs);
      if (atRisk) stats.touchesAtRisk++;
      else if (t.at > lower) {
        lower = t.at;
        lowerFrom = t;
      }
    }
    if (row.lastAccessed + 0.5 < lower)
      violate('lost-touch', `last_accessed of ${row.id} is ${row.lastAccessed}, but a touch at ${lower} was recorded and not at risk`, {
        touch: lowerFrom,
        lastAccessed: row.lastAccessed,
      });
  }

  // ---- 7: the feed delivered every change ---------------------------------------------------------------
  const d: Delivery[] = h.deliveries;
  const bySid = new Map<string, number[]>();
  const resets: number[] = [];
  d.forEach((x, i) => {
    if (x.reset) resets.push(i);
    for (const id of x.ids) {
      listIn(bySid, id).push(i);
    }
  });
  const anyIn = (list: number[] | undefined, lo: number, hi: number) => {
    if (list === undefined) return false;
    const k = firstAfter(list, lo - 1, (x) => x);
    return k < list.length && (list[k] as number) <= hi;
  };
  // The first delivery whose freshAsOf is past t (freshAsOf is not monotonic across workers: running maximum).
  const maxFresh: number[] = [];
  for (const x of d) maxFresh.push(Math.max(x.freshAsOf, maxFresh[maxFresh.length - 1] ?? Number.NEGATIVE_INFINITY));
  for (const c of changes) {
    // The idle pool lives in its own schema, whose feed the observer does not follow.
    if (sessions.get(c.sid)?.pool === 'idle') continue;
    const j = firstAfter(maxFresh, c.end + slack, (x) => x);
    if (j >= d.length) {
      violate('feed-not-covered', `no delivery to the observer was fresh as of the end of a change of ${c.sid}`, brief(c.op));
      continue;
    }
    stats.changesChecked++;
    const lo = firstAfter(d, c.start - slack, (x) => x.receivedAt);
    if (lo > j || !(anyIn(bySid.get(c.sid), lo, j) || anyIn(resets, lo, j)))
      violate('feed-gap', `change of ${c.sid} was never delivered to the observer (deliveries ${lo}..${j} checked)`, {
        change: brief(c.op),
        window: { from: d[lo]?.receivedAt, to: d[j]?.receivedAt, freshAsOf: d[j]?.freshAsOf },
      });
  }

  return { violations, counts: Object.fromEntries(perKind) as CheckResult['counts'], stats };
}
