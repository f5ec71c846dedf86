// The chaos checker's bogus-last-access rule (chaos/check.ts, chaos/README.md item 6) bounds a stored
// last_accessed by the accesses that could have made it. A 60 s run showed a value 1.16 s newer than every
// access the checker knew; no library path stores a value no access made, but the rule had two unsound
// bounds. The sampler recorded when it sent its query, and on a loaded machine the query can run later, after
// a flush wrote a touch of a read begun in between: a sample now counts the accesses begun before its answer
// came (the snapshot lies between the two). And a read that timed out may still have found and touched its
// session: its touch bounds the stored value too, and a touch injected to a worker whose POST timed out may be
// handled (and clamped to the worker's clock) after the runner gave up. Small hand-made histories, each also
// with a value no access explains.
import { describe, expect, it } from 'vitest';
import { checkHistory } from '../../chaos/check.ts';
import type { CreateOp, History, ReadOp, TouchOp, ViolationKind } from '../../chaos/types.ts';

const T = 1_800_000_000_000;
const S = '00000000-0000-4000-8000-0000000000a1';
const HOUR = 3_600_000;

/** S created by process 0 at T + 5 (free pool, no cap, its creation delivered by the feed), nothing else. */
function history(): History {
  const create: CreateOp = {
    kind: 'create',
    proc: 0,
    seq: 1,
    status: 'ok',
    phase: 'load',
    user: 'user-1',
    attrs: {},
    expiresAt: T + HOUR,
    start: T,
    end: T + 10,
    result: { id: S, token: 'tok', version: 1, at: T + 5, evicted: [] },
  };
  return {
    config: { maxStalenessMs: 1000, clockSlackMs: 5, cap: 3, cappedUsers: [], touchLossWindowMs: 3000, procWorker: [0, -1] },
    loadStart: T,
    loadEnd: T + 20_000,
    ops: [create],
    faults: [],
    deliveries: [
      { worker: 0, requestStart: T - 10, receivedAt: T - 5, after: null, cursor: 'c', ids: [], reset: true, freshAsOf: T - 6 },
      { worker: 0, requestStart: T + 15, receivedAt: T + 20, after: 'c', cursor: 'c', ids: [S], reset: false, freshAsOf: T + 19 },
    ],
    samples: [],
    counts: [],
    processEvents: [],
    final: { at: T + 30_000, sessions: [{ id: S, userId: 'user-1', lastAccessed: T + 5, expiresAt: T + HOUR }] },
  };
}

function read(start: number, extra: Partial<ReadOp>): ReadOp {
  return {
    kind: 'read',
    proc: 0,
    seq: 2,
    status: 'ok',
    phase: 'load',
    token: 'tok',
    sid: S,
    force: false,
    touch: true,
    origin: 'read',
    start: T + start,
    end: T + start + 2,
    result: { found: true, id: S, version: 1, attrs: {}, clockAt: T + start, touchAt: T + start },
    ...extra,
  };
}

const kinds = (h: History): ViolationKind[] => [...new Set(checkHistory(h).violations.map((v) => v.kind))].sort();

describe('chaos checker: what may have set a stored last_accessed', () => {
  it('a sample whose query was sent before a read began may show that read’s touch, flushed before the answer came', () => {
    const h = history();
    h.ops.push(read(1000, {}));
    h.final.sessions[0] = { id: S, userId: 'user-1', lastAccessed: T + 1000, expiresAt: T + HOUR };
    // Query sent at +900, answered at +2160: the flush of the +1000 touch committed in between.
    h.samples.push({ at: T + 900, end: T + 2160, id: S, lastAccessed: T + 1000 });
    expect(kinds(h)).toEqual([]);
    // A value no access begun before the answer explains is still caught.
    h.samples.push({ at: T + 2200, end: T + 2300, id: S, lastAccessed: T + 2250 });
    expect(kinds(h)).toEqual(['bogus-last-access']);
    // Before the answer came, nothing could have been read: a value from an access begun after it is bogus.
    const g = history();
    g.ops.push(read(3000, {}));
    g.final.sessions[0] = { id: S, userId: 'user-1', lastAccessed: T + 3000, expiresAt: T + HOUR };
    g.samples.push({ at: T + 900, end: T + 2160, id: S, lastAccessed: T + 3000 });
    expect(kinds(g)).toEqual(['bogus-last-access']);
  });

  it('a read that timed out may have touched its session (on its process’s clock, by the time it gave up)', () => {
    const h = history();
    // No answer within 10 s; the manager's call began at once and touched on its clock (process 0 runs 0.5 s ahead).
    h.config.clockSkewMs = [500, 0];
    h.ops.push(read(1000, { status: 'timeout', error: 'no answer within 10000 ms', end: T + 11_000, result: undefined }));
    h.final.sessions[0] = { id: S, userId: 'user-1', lastAccessed: T + 1500, expiresAt: T + HOUR };
    expect(kinds(h)).toEqual([]);
    // Not later than that clock when it gave up.
    h.final.sessions[0] = { id: S, userId: 'user-1', lastAccessed: T + 11_600, expiresAt: T + HOUR };
    expect(kinds(h)).toEqual(['bogus-last-access']);
    // A read that asked for no touch explains nothing.
    const g = history();
    g.ops.push(read(1000, { status: 'timeout', touch: false, end: T + 11_000, result: undefined }));
    g.final.sessions[0] = { id: S, userId: 'user-1', lastAccessed: T + 1000, expiresAt: T + HOUR };
    expect(kinds(g)).toEqual(['bogus-last-access']);
  });

  it('an HTTP request that timed out may have been read by the server later: only the receiver’s clamp bounds its touch', () => {
    const h = history();
    h.ops.push(read(1000, { status: 'timeout', via: 'http', end: T + 11_000, result: undefined }));
    h.final.sessions[0] = { id: S, userId: 'user-1', lastAccessed: T + 14_000, expiresAt: T + HOUR };
    expect(kinds(h)).toEqual([]);
    // Before it began, it explains nothing.
    h.samples.push({ at: T + 500, end: T + 600, id: S, lastAccessed: T + 900 });
    expect(kinds(h)).toEqual(['bogus-last-access']);
  });

  it('a touch POSTed to the worker that timed out may be handled after the runner gave up, clamped to the worker’s clock then', () => {
    // An idle-pool session (4 s), read at +1000 and so alive when a touch claimed a minute ahead is injected at
    // +3000; the POST is given up at +5000, the worker handles it at +6200 and stores its own clock.
    const h = history();
    h.config.touchMaxHoldMs = 2000;
    h.config.idleWorker = 0;
    h.config.procWorker = [0, -1];
    const create = h.ops[0] as CreateOp;
    create.user = 'idle-0';
    create.pool = 'idle';
    create.idleMs = 4000;
    h.deliveries[1] = { ...(h.deliveries[1] as History['deliveries'][number]), ids: [] }; // the idle schema has no observer
    h.ops.push(read(1000, {}));
    const touch: TouchOp = {
      kind: 'touch',
      proc: 1,
      seq: 3,
      status: 'timeout',
      error: 'The operation was aborted due to timeout',
      phase: 'load',
      sid: S,
      token: 'tok',
      target: 'worker',
      value: T + 3000 + 59_000,
      first: T + 1000,
      recvLo: T + 3000,
      recvHi: T + 5000,
      start: T + 3000,
      end: T + 5000,
    };
    h.ops.push(touch);
    h.final.sessions[0] = { id: S, userId: 'idle-0', lastAccessed: T + 6200, expiresAt: T + HOUR };
    expect(kinds(h)).toEqual([]);
    // Answered, it was handled by then: a later value is bogus.
    touch.status = 'ok';
    delete touch.error;
    touch.result = { accepted: 1 };
    expect(kinds(h)).toEqual(['bogus-last-access']);
  });
});
