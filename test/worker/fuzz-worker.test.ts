// Fuzzing the worker's inputs: /v1/touches bodies, cursors and query strings. Properties: never a crash
// (no 5xx), a typed 4xx for every rejected body, nothing pending after a rejected body, and accepted
// batches stored exactly (newest time per session).
import { drizzle } from 'drizzle-orm/node-postgres';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCursor } from '../../src/db/feed.ts';
import { parseTouches } from '../../src/host/app.ts';
import { migrate } from '../../src/migrate.ts';
import { MAX_TOUCHES_PER_BATCH } from '../../src/protocol.ts';
import { type RunningWorker, startWorker } from '../../worker/main.ts';
import { databaseUrl, dropSchema, uniqueSchema } from '../support/db.ts';
import { fuzzParams } from '../support/fuzz.ts';

const SECRET = 'fuzz-worker-secret-0123456789-abcdefghij';
const auth = { authorization: `Bearer ${SECRET}` };
const uuid = fc.uuid({ version: 4 });
const now = Date.now();
/** The receiver's bound on how long a client holds a touch (HostOptions.touchMaxHold), small enough to bite. */
const MAX_HOLD = 5000;
const goodTime = fc.integer({ min: 1, max: now + 3_600_000 });
const anyJson = fc.jsonValue({ maxDepth: 4 });
const touchPair = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(uuid, goodTime) },
  {
    weight: 1,
    arbitrary: fc.tuple(
      fc.oneof(
        fc.string(),
        uuid.map((u) => `${u}x`),
        fc.constant(''),
      ),
      goodTime,
    ),
  },
  { weight: 1, arbitrary: fc.tuple(uuid, fc.oneof(fc.double(), fc.string(), fc.constant(null), fc.integer({ min: -5, max: 0 }))) },
  // Clocks far ahead are clamped, not refused; a run's first access may not come after its last.
  { weight: 1, arbitrary: fc.tuple(uuid, fc.integer({ min: now + 60_000, max: now + 1e12 })) },
  { weight: 2, arbitrary: fc.tuple(uuid, goodTime, goodTime) },
  { weight: 1, arbitrary: fc.tuple(uuid, fc.integer({ min: 8.64e15 + 1, max: 9e15 })) },
  { weight: 1, arbitrary: anyJson },
);
const touchBody = fc.oneof(
  { weight: 6, arbitrary: fc.record({ touches: fc.array(touchPair, { maxLength: 8 }) }) },
  { weight: 1, arbitrary: anyJson },
  { weight: 1, arbitrary: fc.record({ touches: anyJson }) },
);

/** The oracle: which bodies are valid (independent of worker/app.ts). */
function valid(body: unknown): boolean {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return false;
  const t = (body as { touches?: unknown }).touches;
  if (!Array.isArray(t) || t.length > MAX_TOUCHES_PER_BATCH) return false;
  const time = (v: unknown) => Number.isInteger(v) && (v as number) > 0 && (v as number) <= 8.64e15;
  return t.every(
    (p) =>
      Array.isArray(p) &&
      (p.length === 2 || p.length === 3) &&
      typeof p[0] === 'string' &&
      /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(p[0]) &&
      time(p[1]) &&
      (p.length === 2 || (time(p[2]) && p[2] <= p[1])),
  );
}

describe('worker input fuzzing', () => {
  it('parseTouches agrees with the oracle and never throws (3,000 cases)', () => {
    fc.assert(
      fc.property(touchBody, (body) => {
        const r = parseTouches(body, now, MAX_HOLD);
        expect(typeof r === 'string').toBe(!valid(body));
        // Accepted times never lie in the receiver's future, and a run's first access is never earlier than
        // the receiver can vouch for (now - maxHold), nor later than both its last access and that bound.
        if (typeof r !== 'string')
          for (const [, last, first = last] of r)
            expect(last <= now && first <= now && first >= now - MAX_HOLD && first <= Math.max(last, now - MAX_HOLD)).toBe(true);
      }),
      fuzzParams(3000),
    );
  });

  it('cursor shapes: only snapshots are cursors (2,000 cases)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^\d{1,5}:\d{1,5}:(\d{1,5}(,\d{1,5})*)?$/)), (s) => {
        expect(isCursor(s)).toBe(/^\d{1,20}:\d{1,20}:(\d{1,20}(,\d{1,20})*)?$/.test(s) && s.length <= 16384);
      }),
      fuzzParams(2000),
    );
  });

  describe('over HTTP against a running worker', () => {
    let admin: pg.Pool;
    let schemaName: string;
    let w: RunningWorker;
    beforeAll(async () => {
      admin = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
      schemaName = uniqueSchema('fuzzw');
      await migrate(drizzle(admin), { schemaName });
      w = await startWorker({
        databaseUrl: databaseUrl(),
        secret: SECRET,
        port: 0,
        schemaName,
        log: 'silent',
        lastAccessUpdateInterval: 3_600_000,
      });
      await w.ready();
    });
    afterAll(async () => {
      await w?.close();
      await dropSchema(admin, schemaName);
      await admin.end();
    });

    it('POST /v1/touches: typed 400 for rejected bodies with nothing added, 200 otherwise (400 cases)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            touchBody.map((b) => JSON.stringify(b)),
            fc.string(),
          ),
          async (text) => {
            const before = w.pendingTouches;
            const res = await fetch(`${w.url}/v1/touches`, { method: 'POST', headers: auth, body: text });
            let parsed: unknown;
            let isJson = true;
            try {
              parsed = JSON.parse(text);
            } catch {
              isJson = false;
            }
            if (isJson && valid(parsed)) {
              expect(res.status).toBe(200);
            } else {
              expect(res.status).toBe(400);
              const body = (await res.json()) as { error: { code: string } };
              expect(typeof body.error.code).toBe('string');
              expect(w.pendingTouches).toBe(before);
            }
          },
        ),
        fuzzParams(400),
      );
    });

    it('GET /v1/changes and /v1/stream with arbitrary query strings: never a 5xx, always a usable cursor (300 cases)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(fc.string(), fc.stringMatching(/^\d{1,12}:\d{1,12}:(\d{1,12}(,\d{1,12})*)?$/)), async (after) => {
          const res = await fetch(`${w.url}/v1/changes?after=${encodeURIComponent(after)}&x=${encodeURIComponent(after)}`, {
            headers: auth,
          });
          expect(res.status).toBe(200);
          const body = (await res.json()) as { cursor: string; reset: boolean; ids: string[] };
          expect(isCursor(body.cursor)).toBe(true);
          if (!isCursor(after)) expect(body.reset).toBe(true);
        }),
        fuzzParams(300),
      );
    });
  });
});
