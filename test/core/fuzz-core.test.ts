// Property-based fuzzing of the core store (fast-check): tokens, attribute names and values, options.
// Oracles and arbitraries live in test/support/fuzz.ts (see there for FUZZ_SCALE / FUZZ_SEED / FUZZ_PATH).
// A failure report from fast-check carries the seed and path that replay it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, type SessionConfig } from '../../src/core/config.ts';
import { SessionManager } from '../../src/core/manager.ts';
import type { Session } from '../../src/core/session.ts';
import type { SqlExecutor } from '../../src/db/executor.ts';
import { createSessionTables } from '../../src/schema.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import {
  assertConfigError,
  assertNoPollution,
  assertPlainJson,
  assertSessionError,
  attributeKey,
  attributeValue,
  CONFIG_OPTIONS,
  CONFIG_SPEC,
  configCase,
  DANGEROUS_NAMES,
  EDGE_NUMBERS,
  type ExpirySpec,
  expectedExpiry,
  expectedValueOutcome,
  expirySpec,
  fuzzParams,
  isValidKey,
  MAX_TABLE_PREFIX,
  malformedToken,
  nest,
  POLLUTION_JSON,
  rejected,
  resolveExpiry,
  SPEC,
  sameJson,
  storableString,
  TIME_RANGE,
  thrown,
  wellFormedToken,
} from '../support/fuzz.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

/** A database that answers every statement with no rows, and counts them. */
function stubDb(): SqlExecutor & { count: number } {
  const db = {
    count: 0,
    execute: async () => {
      db.count++;
      return { rows: [] };
    },
  };
  return db;
}

/** An object with `key` as an own data property (so "__proto__" is a key, not a prototype). */
function withOwn(key: string, value: unknown): Record<string, unknown> {
  return Object.defineProperty({}, key, { value, enumerable: true, writable: true, configurable: true });
}

type Expected =
  | { code: 'INVALID_ARGUMENT' | 'ATTRIBUTE_NOT_SERIALIZABLE' | 'ATTRIBUTE_TOO_LARGE' }
  | { code: null; expiresAt: number | null };

/** Oracle for `session.set(key, value, { expiresAt })`: the name, then the expiry, then the value. */
function expectedSet(key: unknown, value: unknown, expiresAt: unknown, maxBytes: number): Expected {
  if (!isValidKey(key)) return { code: 'INVALID_ARGUMENT' };
  const exp = expectedExpiry(expiresAt);
  if (!exp.ok) return { code: 'INVALID_ARGUMENT' };
  const outcome = expectedValueOutcome(value, maxBytes);
  return outcome === 'ok' ? { code: null, expiresAt: exp.ms } : { code: outcome };
}

/** Everything a caller can observe of a session's attributes (values as JSON). */
function observe(s: Session): { modified: boolean; attributes: [string, string][] } {
  return {
    modified: s.isModified,
    attributes: s
      .keys()
      .sort()
      .map((k) => [k, JSON.stringify(s.get(k))]),
  };
}

function assertDeepFrozen(v: unknown): void {
  if (v === null || typeof v !== 'object') return;
  if (!Object.isFrozen(v)) throw new Error('a value handed out by a session is not frozen');
  for (const k of Object.keys(v)) assertDeepFrozen((v as Record<string, unknown>)[k]);
}

/** The attribute as read back must be the value that was set, plain, frozen, with nothing polluted. */
function assertReadBack(value: unknown, back: unknown): void {
  if (!sameJson(value, back, 0))
    throw new Error(`read back ${JSON.stringify(back)?.slice(0, 200)} for ${JSON.stringify(value)?.slice(0, 200)}`);
  assertPlainJson(back);
  assertDeepFrozen(back);
  assertNoPollution();
}

// ---- pure properties (no database): high run counts -------------------------------------------------

describe('attributes (no database)', () => {
  const LIMITS = [1, 8, 64, 1024, 16384];

  it('session.set: accepted values read back exactly; refusals are typed and change nothing', async () => {
    const db = stubDb();
    const clock = fakeClock();
    const managers = LIMITS.map((maxAttributeLength) => new SessionManager(db, { maxAttributeLength, clock, cacheSize: 16 }));
    await fc.assert(
      fc.asyncProperty(
        fc.nat(LIMITS.length - 1),
        attributeKey,
        attributeValue,
        expirySpec,
        fc.boolean(),
        async (li, key, value, exp, pending) => {
          const { session } = await managers[li]!.createSession('fuzz', LIMITS[li]! >= 3 ? { base: 'b' } : {});
          if (pending) session.set('pending', 1);
          const before = observe(session);
          const expiresAt = resolveExpiry(exp, clock());
          const expected = expectedSet(key, value, expiresAt, LIMITS[li]!);
          const err = thrown(() => session.set(key as string, value, { expiresAt: expiresAt as number }));
          // Reads never throw, whatever the name.
          expect(thrown(() => session.get(key as string))).toBeUndefined();
          if (expected.code !== null) {
            assertSessionError(err, expected.code);
            expect(observe(session)).toEqual(before);
          } else {
            if (err !== undefined) throw err;
            const k = key as string;
            const visible = expected.expiresAt === null || expected.expiresAt > clock();
            expect(session.isModified).toBe(true);
            expect(session.has(k)).toBe(visible);
            if (visible) {
              assertReadBack(value, session.get(k));
              expect(session.attributeExpiresAt(k)).toEqual(expected.expiresAt === null ? null : new Date(expected.expiresAt));
            } else expect(session.get(k)).toBeUndefined();
          }
          // delete validates the name the same way.
          const delErr = thrown(() => session.delete(key as string));
          if (isValidKey(key)) expect(delErr).toBeUndefined();
          else assertSessionError(delErr, 'INVALID_ARGUMENT');
          assertNoPollution();
        },
      ),
      fuzzParams(2000),
    );
  });

  it('createSession(userId, attributes): same acceptance as set, and a refusal sends no statement', async () => {
    const db = stubDb();
    const clock = fakeClock();
    const managers = LIMITS.map((maxAttributeLength) => new SessionManager(db, { maxAttributeLength, clock, cacheSize: 16 }));
    await fc.assert(
      fc.asyncProperty(fc.nat(LIMITS.length - 1), attributeKey, attributeValue, async (li, key, value) => {
        const k = typeof key === 'string' ? key : String(key);
        const expected = !isValidKey(k) ? 'INVALID_ARGUMENT' : value === undefined ? 'ok' : expectedValueOutcome(value, LIMITS[li]!);
        const before = db.count;
        let created: Awaited<ReturnType<SessionManager['createSession']>> | undefined;
        const err = await rejected(
          managers[li]!.createSession('fuzz', withOwn(k, value)).then((c) => {
            created = c;
          }),
        );
        if (expected !== 'ok') {
          assertSessionError(err, expected);
          expect(db.count).toBe(before);
        } else {
          if (err !== undefined) throw err;
          expect(db.count).toBe(before + 1);
          if (value === undefined) expect(created!.session.has(k)).toBe(false);
          else assertReadBack(value, created!.session.get(k));
        }
        assertNoPollution();
      }),
      fuzzParams(1000),
    );
  });
});

describe('configuration (no database)', () => {
  it('new SessionManager(db, config) keeps the given values, or throws a ConfigError naming a faulty key', () => {
    const db = stubDb();
    fc.assert(
      fc.property(configCase, ({ config, faulty }) => {
        let m: SessionManager | undefined;
        const err = thrown(() => {
          m = new SessionManager(db, config as SessionConfig);
        });
        if (faulty.length > 0) {
          assertConfigError(err, faulty);
          return;
        }
        if (err !== undefined) throw err;
        const given = config as Record<string, unknown>;
        for (const option of CONFIG_OPTIONS) {
          const v = Object.hasOwn(given, option) ? given[option] : undefined;
          const actual = (m!.config as unknown as Record<string, unknown>)[option];
          if (v !== undefined) expect(Object.is(actual, v)).toBe(true);
          else if (option === 'clock') expect(actual).toBe(Date.now);
          else expect(actual).toBe((DEFAULTS as Record<string, unknown>)[option]);
        }
        expect(m!.names.sessions).toBe(`"${m!.config.schemaName}"."${m!.config.tablePrefix}sessions"`);
        assertNoPollution();
      }),
      fuzzParams(3000),
    );
  });

  it('the largest cacheSize constructs (its LRUs preallocate), one more is a ConfigError', () => {
    expect(new SessionManager(stubDb(), { cacheSize: 1_000_000 }).config.cacheSize).toBe(1_000_000);
    assertConfigError(
      thrown(() => new SessionManager(stubDb(), { cacheSize: 1_000_001 })),
      ['cacheSize'],
    );
  });

  it('createSessionTables(schemaName, tablePrefix) builds tables or throws a ConfigError naming the option', () => {
    const name = fc.oneof(
      fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,40}$/),
      fc.string({ unit: 'binary', maxLength: 70 }),
      fc.constantFrom(
        undefined,
        null,
        '',
        'pg_x',
        'PG_catalog',
        'a'.repeat(63),
        'a'.repeat(64),
        'a'.repeat(MAX_TABLE_PREFIX),
        'a'.repeat(MAX_TABLE_PREFIX + 1),
        'x"; --',
        5,
        {},
        ...DANGEROUS_NAMES,
      ),
    );
    fc.assert(
      fc.property(name, name, (schemaName, tablePrefix) => {
        const effective = { schemaName: schemaName ?? 'public', tablePrefix: tablePrefix ?? '' };
        const faulty = (['schemaName', 'tablePrefix'] as const).filter((o) => !CONFIG_SPEC[o]!(effective[o]));
        let tables: ReturnType<typeof createSessionTables> | undefined;
        const err = thrown(() => {
          tables = createSessionTables({ schemaName, tablePrefix } as { schemaName?: string; tablePrefix?: string });
        });
        if (faulty.length > 0) assertConfigError(err, faulty);
        else {
          if (err !== undefined) throw err;
          expect(tables!.schemaName).toBe(effective.schemaName);
          expect(tables!.tablePrefix).toBe(effective.tablePrefix);
        }
      }),
      fuzzParams(1000),
    );
  });

  it('createSession options (user id, group id, expiry) without a database: typed refusals send no statement', async () => {
    const db = stubDb();
    const clock = fakeClock();
    const m = new SessionManager(db, { clock, cacheSize: 16 });
    await fc.assert(
      fc.asyncProperty(userIdArb, fc.option(userIdArb, { nil: undefined }), createExpiryArb, async (userId, groupId, exp) => {
        const expiresAt = resolveExpiry(exp, clock());
        const before = db.count;
        const err = await rejected(m.createSession(userId as string, {}, { groupId: groupId as string, expiresAt: expiresAt as number }));
        if (expectCreateOk(userId, groupId, expiresAt, clock())) {
          if (err !== undefined) throw err;
          expect(db.count).toBe(before + 1);
        } else {
          assertSessionError(err, 'INVALID_ARGUMENT');
          expect(db.count).toBe(before);
        }
      }),
      fuzzParams(1000),
    );
  });
});

const userIdArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 20 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }) },
  { weight: 2, arbitrary: fc.constantFrom(...DANGEROUS_NAMES) },
  {
    weight: 2,
    arbitrary: fc.constantFrom('', 'u'.repeat(512), 'u'.repeat(513), 'a\u0000b', '\uD800', '😀'.repeat(256), null, 0, 5n, {}, ['u']),
  },
);

const createExpiryArb = fc.oneof(
  expirySpec,
  fc.constantFrom({ kind: 'raw' as const, value: TIME_RANGE.max }, { kind: 'raw' as const, value: new Date(TIME_RANGE.max) }),
);

/** Oracle for createSession's arguments: user/group ids of 1..512 storable characters, an expiry in the future. */
function expectCreateOk(userId: unknown, groupId: unknown, expiresAt: unknown, now: number): boolean {
  const id = (v: unknown) => typeof v === 'string' && v.length >= 1 && v.length <= 512 && storableString(v);
  if (!id(userId) || (groupId !== undefined && groupId !== null && !id(groupId))) return false;
  const exp = expectedExpiry(expiresAt);
  return exp.ok && (exp.ms === null || exp.ms > now);
}

// ---- properties against PostgreSQL, on both drivers: moderate run counts -----------------------------

async function storedRow(fx: StoreFixture, id: string): Promise<unknown> {
  const r = await fx.t.admin.query(
    `SELECT attributes::text AS attributes, version, updated_at::text AS updated_at, encode(token_hash, 'hex') AS token_hash
       FROM "${fx.schemaName}"."sessions" WHERE id = $1::uuid`,
    [id],
  );
  return r.rows[0];
}

async function rowsOfUser(fx: StoreFixture, userId: string): Promise<number> {
  const r = await fx.t.admin.query(`SELECT count(*)::integer AS n FROM "${fx.schemaName}"."sessions" WHERE user_id = $1`, [userId]);
  return r.rows[0].n as number;
}

describe.each(DRIVERS)('tokens and cookie values (%s)', (driver) => {
  const fx = useStore(driver, 'fuzztok');

  it('malformed tokens: getSession/deleteSession/rotate return null/false without a statement', async () => {
    const m = fx.manager();
    const live = await Promise.all([1, 2, 3].map(async (i) => (await m.createSession(`live-${i}`, { n: i })).token));
    const versions = await Promise.all(live.map(async (t) => (await m.getSession(t, { forceRefresh: true }))!.version));
    await fc.assert(
      fc.asyncProperty(malformedToken(live), async (t) => {
        m.db.reset();
        expect(await m.getSession(t as string)).toBeNull();
        expect(await m.getSession(t as string, { forceRefresh: true })).toBeNull();
        expect(await m.deleteSession(t as string)).toBe(false);
        expect(await m.rotate(t as string)).toBeNull();
        expect(m.db.count).toBe(0);
      }),
      fuzzParams(1000),
    );
    // The live sessions were neither rotated nor deleted.
    for (const [i, t] of live.entries()) expect((await m.getSession(t, { forceRefresh: true }))?.version).toBe(versions[i]);
  });

  it('well-formed unknown tokens (random, or a live token with one character changed): null/false, one statement per call', async () => {
    const m = fx.manager();
    const { token: live, session } = await m.createSession('live', { n: 1 });
    const oneCharOff = fc
      .tuple(fc.nat(41), fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'))
      .map(([i, c]) => live.slice(0, i) + c + live.slice(i + 1))
      .filter((t) => t !== live);
    await fc.assert(
      fc.asyncProperty(fc.oneof(wellFormedToken, oneCharOff), async (t) => {
        m.db.reset();
        expect(await m.getSession(t)).toBeNull();
        expect(await m.deleteSession(t)).toBe(false);
        expect(await m.rotate(t)).toBeNull();
        expect(m.db.count).toBe(3);
      }),
      fuzzParams(150),
    );
    const again = await m.getSession(live, { forceRefresh: true });
    expect(again?.id).toBe(session.id);
    expect(again?.version).toBe(session.version);
  });
});

/** Values that must reach PostgreSQL on every run, not only when the random draw picks them. */
const PINNED_VALUES: unknown[] = [
  ...EDGE_NUMBERS,
  ...POLLUTION_JSON.map((j) => JSON.parse(j) as unknown),
  [Number.MAX_SAFE_INTEGER, Number.MIN_VALUE, 1e308, -1e308, 5e-324, 0.1 + 0.2],
  nest(SPEC.maxDepth, 'mixed', 'deepest accepted'),
  nest(SPEC.maxDepth + 1, 'array', 'one too deep'),
  '\uD800',
  'a\u0000b',
  '😀\u2028\uFEFF\uFFFF',
  'x'.repeat(16384 - 2),
  'x'.repeat(16384 - 1),
];

describe.each(DRIVERS)('attributes through PostgreSQL (%s)', (driver) => {
  const fx = useStore(driver, 'fuzzattr');

  it('set → updateSession → another manager reads the exact value; refusals write nothing', async () => {
    const clock = fakeClock();
    const LIMITS = [16384, 64];
    const writers = LIMITS.map((maxAttributeLength) => fx.manager({ clock, maxAttributeLength }));
    const reader = fx.manager({ clock, cacheSize: 0 });
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.nat(LIMITS.length - 1),
        attributeKey,
        attributeValue,
        expirySpec,
        fc.constantFrom('set', 'set+pending', 'create'),
        async (li, key, value, exp, via) => {
          const m = writers[li]!;
          const user = `fz-${n++}`;
          if (via === 'create') {
            // Same as the pure property, but the row must really be there (or really not).
            const k = typeof key === 'string' ? key : String(key);
            const expected = !isValidKey(k) ? 'INVALID_ARGUMENT' : value === undefined ? 'ok' : expectedValueOutcome(value, LIMITS[li]!);
            m.db.reset();
            let token = '';
            const err = await rejected(
              m.createSession(user, withOwn(k, value)).then((c) => {
                token = c.token;
              }),
            );
            if (expected !== 'ok') {
              assertSessionError(err, expected);
              expect(m.db.count).toBe(0);
              expect(await rowsOfUser(fx, user)).toBe(0);
            } else {
              if (err !== undefined) throw err;
              expect(m.db.count).toBe(1);
              const s = await reader.getSession(token);
              expect(s).not.toBeNull();
              if (value === undefined) expect(s!.has(k)).toBe(false);
              else assertReadBack(value, s!.get(k));
            }
            return;
          }
          const pending = via === 'set+pending';
          const { session, token } = await m.createSession(user, { base: 'b' });
          if (pending) session.set('pending', 1);
          const rowBefore = await storedRow(fx, session.id);
          const expiresAt = resolveExpiry(exp, clock());
          const expected = expectedSet(key, value, expiresAt, LIMITS[li]!);
          m.db.reset();
          const err = thrown(() => session.set(key as string, value, { expiresAt: expiresAt as number }));
          if (expected.code !== null) {
            assertSessionError(err, expected.code);
            expect(m.db.count).toBe(0);
            expect(session.isModified).toBe(pending);
            await m.updateSession(session);
            expect(m.db.count).toBe(pending ? 1 : 0);
            if (!pending) expect(await storedRow(fx, session.id)).toEqual(rowBefore);
            const s = await reader.getSession(token);
            expect(s!.keys().sort()).toEqual(pending ? ['base', 'pending'] : ['base']);
            expect(s!.get('base')).toBe('b');
          } else {
            if (err !== undefined) throw err;
            expect(m.db.count).toBe(0);
            await m.updateSession(session);
            expect(m.db.count).toBe(1);
            const k = key as string;
            const s = await reader.getSession(token);
            expect(s).not.toBeNull();
            const visible = expected.expiresAt === null || expected.expiresAt > clock();
            expect(s!.has(k)).toBe(visible);
            if (visible) {
              assertReadBack(value, s!.get(k));
              expect(s!.attributeExpiresAt(k)).toEqual(expected.expiresAt === null ? null : new Date(expected.expiresAt));
            }
            if (k !== 'base') expect(s!.get('base')).toBe('b');
          }
          assertNoPollution();
        },
      ),
      fuzzParams(300, {
        examples: PINNED_VALUES.flatMap((v): [number, unknown, unknown, ExpirySpec, 'set' | 'set+pending' | 'create'][] => [
          [0, 'k', v, { kind: 'none' }, 'set'],
          [0, '__proto__', v, { kind: 'none' }, 'create'],
        ]),
      }),
    );
  });

  it('createSession options: accepted ids and expiries are stored and read back unchanged', async () => {
    const clock = fakeClock();
    const m = fx.manager({ clock });
    const reader = fx.manager({ clock, cacheSize: 0 });
    await fc.assert(
      fc.asyncProperty(userIdArb, fc.option(userIdArb, { nil: undefined }), createExpiryArb, async (userId, groupId, exp) => {
        const expiresAt = resolveExpiry(exp, clock());
        m.db.reset();
        let created: Awaited<ReturnType<SessionManager['createSession']>> | undefined;
        const err = await rejected(
          m.createSession(userId as string, {}, { groupId: groupId as string, expiresAt: expiresAt as number }).then((c) => {
            created = c;
          }),
        );
        if (!expectCreateOk(userId, groupId, expiresAt, clock())) {
          assertSessionError(err, 'INVALID_ARGUMENT');
          expect(m.db.count).toBe(0);
          return;
        }
        if (err !== undefined) throw err;
        const s = await reader.getSession(created!.token);
        expect(s).not.toBeNull();
        expect(s!.userId).toBe(userId);
        expect(s!.groupId).toBe(groupId ?? null);
        expect(s!.expiresAt.getTime()).toBe(created!.session.expiresAt.getTime());
        const exp2 = expectedExpiry(expiresAt);
        if (exp2.ok && exp2.ms !== null) expect(s!.expiresAt.getTime()).toBe(exp2.ms);
        // Clean up: userIds repeat across runs and maxSessions would otherwise evict.
        await m.deleteSession(created!.token);
      }),
      fuzzParams(150),
    );
  });
});
