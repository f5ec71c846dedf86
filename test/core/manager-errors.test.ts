// Typed errors on both drivers: values that are not plain JSON, oversized values, missing tables, an
// unreachable database (a real closed port, through each driver), and invalid configuration (ARCHITECTURE.md, promise 14).
import { describe, expect, it } from 'vitest';
import { LONGEST_SUFFIX } from '../../src/core/config.ts';
import {
  AttributeNotSerializableError,
  AttributeTooLargeError,
  ConfigError,
  DatabaseUnavailableError,
  InvalidArgumentError,
  SchemaMissingError,
  SessionError,
} from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { migrate } from '../../src/migrate.ts';
import { DRIVERS, fakeClock } from '../support/db.ts';
import { caught, countRows, rawRow, switchable, table, uid, unreachableDb } from '../support/manager-helpers.ts';
import { counting, useStore } from '../support/store-suite.ts';

const cycle: Record<string, unknown> = { a: 1 };
cycle.self = cycle;
class Point {
  x = 1;
}
const sparse: number[] = [1];
sparse[2] = 3;
let deep: unknown = 1;
for (let i = 0; i < 100; i++) deep = [deep];

/** Values PostgreSQL's jsonb or a JSON round trip would not give back unchanged. */
const NOT_SERIALIZABLE: [string, unknown][] = [
  ['function', () => 1],
  ['BigInt', 10n],
  ['symbol', Symbol('s')],
  ['undefined', undefined],
  ['cycle', cycle],
  ['Date', new Date(0)],
  ['Map', new Map([['a', 1]])],
  ['Set', new Set([1])],
  ['class instance', new Point()],
  ['NaN', Number.NaN],
  ['Infinity', Number.POSITIVE_INFINITY],
  ['-0', -0],
  ['nested -0', { a: [1, -0] }],
  ['undefined nested in an array', [1, undefined, 3]],
  ['undefined nested in an object', { a: undefined }],
  ['function nested in an object', { f: () => 1 }],
  ['sparse array', sparse],
  ['lone surrogate string', 'a\ud800b'],
  ['lone surrogate nested', { s: ['\udc00'] }],
  ['lone surrogate in a nested key', { 'k\ud800': 1 }],
  ['NUL character', 'a\u0000b'],
  ['NUL in a nested key', { 'k\u0000': 1 }],
  ['nesting beyond MAX_DEPTH', deep],
];

describe.each(DRIVERS)('attribute errors (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_attr_err');

  it.each(NOT_SERIALIZABLE)('refuses %s at session.set, leaving the session unchanged', async (_name, value) => {
    const m = fx.manager();
    const { session } = await m.createSession(uid(), { k: 'before' });
    const err = await caught(() => session.set('k', value));
    expect(err).toBeInstanceOf(AttributeNotSerializableError);
    expect((err as AttributeNotSerializableError).code).toBe('ATTRIBUTE_NOT_SERIALIZABLE');
    expect((err as AttributeNotSerializableError).key).toBe('k');
    expect(session.isModified).toBe(false);
    expect(session.get('k')).toBe('before');
    m.db.reset();
    await m.updateSession(session);
    expect(m.db.count).toBe(0);
    expect((await rawRow(fx, session.id))!.attributes).toEqual({ k: { v: 'before', ver: 1 } });
  });

  it.each(NOT_SERIALIZABLE.filter(([name]) => name !== 'undefined'))(
    'refuses %s at createSession, writing nothing',
    async (_name, value) => {
      const m = fx.manager();
      const user = uid();
      m.db.reset();
      const err = await caught(m.createSession(user, { ok: 1, bad: value }));
      expect(err).toBeInstanceOf(AttributeNotSerializableError);
      expect((err as AttributeNotSerializableError).key).toBe('bad');
      expect(m.db.count).toBe(0);
      expect(m.cache.size).toBe(0);
      expect(await countRows(fx, 'user_id = $1', [user])).toBe(0);
    },
  );

  it('names the path of the offending value', async () => {
    const m = fx.manager();
    const { session } = await m.createSession(uid());
    const err = (await caught(() => session.set('prefs', { list: [1, { when: new Date(0) }] }))) as AttributeNotSerializableError;
    expect(err.path).toBe('$.list[1].when');
  });

  it('refuses a value larger than maxAttributeLength (UTF-8 bytes of its JSON), at set and at create', async () => {
    const m = fx.manager({ maxAttributeLength: 100 });
    const { session, token } = await m.createSession(uid(), { k: 'x' });
    // 98 characters + 2 quotes = exactly the limit: accepted and read back.
    session.set('k', 'x'.repeat(98));
    await m.updateSession(session);
    expect((await fx.manager().getSession(token))!.get('k')).toBe('x'.repeat(98));

    const err = (await caught(() => session.set('k', 'x'.repeat(99)))) as AttributeTooLargeError;
    expect(err).toBeInstanceOf(AttributeTooLargeError);
    expect(err.code).toBe('ATTRIBUTE_TOO_LARGE');
    expect([err.key, err.size, err.limit]).toEqual(['k', 101, 100]);
    // 60 two-byte characters: 62 UTF-16 units of JSON but 122 bytes.
    const wide = (await caught(() => session.set('k', '\u00e9'.repeat(60)))) as AttributeTooLargeError;
    expect(wide).toBeInstanceOf(AttributeTooLargeError);
    expect(wide.size).toBe(122);
    expect(session.isModified).toBe(false);

    const user = uid();
    m.db.reset();
    await expect(m.createSession(user, { big: { list: 'y'.repeat(200) } })).rejects.toBeInstanceOf(AttributeTooLargeError);
    expect(m.db.count).toBe(0);
    expect(await countRows(fx, 'user_id = $1', [user])).toBe(0);
    expect((await rawRow(fx, session.id))!.attributes.k!.v).toBe('x'.repeat(98));
  });

  it('accepts every plain JSON shape and reads it back equal', async () => {
    const m = fx.manager();
    const value = {
      s: 'text with "quotes", \\ backslash, emoji \u{1f600}, and \u00e9',
      n: [0, 1, -1, 1.5, 1e300, -1e-300, Number.MAX_SAFE_INTEGER],
      b: [true, false],
      z: null,
      nested: { deeper: { list: [[], {}, [{}]] } },
      nullProto: Object.assign(Object.create(null), { a: 1 }),
    };
    const { token } = await m.createSession(uid(), { value, empty: '', zero: 0 });
    const read = await fx.manager().getSession(token);
    expect(read!.get('value')).toEqual(JSON.parse(JSON.stringify(value)));
    expect(read!.get('empty')).toBe('');
    expect(read!.get('zero')).toBe(0);
  });
});

describe.each(DRIVERS)('database errors (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_db_err');

  it('a schema without the tables gives SchemaMissingError naming the schema and prefix', async () => {
    const empty = `${fx.schemaName}_empty`;
    await fx.t.admin.query(`CREATE SCHEMA "${empty}"`);
    try {
      const cases: [string, string][] = [
        [empty, ''], // schema exists, no tables
        [`${fx.schemaName}_nope`, ''], // schema does not exist
        [fx.schemaName, 'other_'], // tables exist, with another prefix
      ];
      for (const [schemaName, tablePrefix] of cases) {
        const m = new SessionManager(fx.t.db, { schemaName, tablePrefix });
        const token = 'A'.repeat(43);
        for (const op of [() => m.getSession(token), () => m.createSession(uid()), () => m.deleteAllUserSessions(uid())]) {
          const err = (await caught(op())) as SchemaMissingError;
          expect(err).toBeInstanceOf(SchemaMissingError);
          expect(err.code).toBe('SCHEMA_MISSING');
          expect(err.schemaName).toBe(schemaName);
          expect(err.tablePrefix).toBe(tablePrefix);
          expect(err.message).toContain(`"${schemaName}"`);
          expect(err.message).toContain(`"${tablePrefix}"`);
          expect(err.message).toContain('migrate');
          expect(err.cause).toBeDefined();
        }
        expect(m.cache.size).toBe(0);
      }
    } finally {
      await fx.t.admin.query(`DROP SCHEMA "${empty}" CASCADE`);
    }
  });

  it('an unreachable database gives DatabaseUnavailableError (DATABASE_UNAVAILABLE) and caches nothing', async () => {
    const dead = unreachableDb(driver);
    try {
      const m = new SessionManager(dead.db, { schemaName: fx.schemaName });
      const { token } = await fx.manager().createSession(uid());
      const ops: [string, () => Promise<unknown>][] = [
        ['createSession', () => m.createSession(uid(), { a: 1 })],
        ['getSession', () => m.getSession(token)],
        ['deleteSession', () => m.deleteSession(token)],
        ['rotate', () => m.rotate(token)],
        ['deleteAllUserSessions', () => m.deleteAllUserSessions(uid())],
        ['listUserSessions', () => m.listUserSessions(uid())],
      ];
      for (const [name, op] of ops) {
        const err = (await caught(op())) as DatabaseUnavailableError;
        expect({ name, err }).toEqual({ name, err: expect.any(DatabaseUnavailableError) });
        expect(err.code).toBe('DATABASE_UNAVAILABLE');
        expect(err).toBeInstanceOf(SessionError);
        expect(err.cause).toBeDefined();
      }
      // A failed create or read leaves nothing behind: a later read must not succeed from memory.
      expect(m.cache.size).toBe(0);
    } finally {
      await dead.close();
    }
  });

  it('when the database goes away mid-life, writes fail typed, keep their pending state, and nothing half-done is cached', async () => {
    const dead = unreachableDb(driver);
    try {
      const clock = fakeClock();
      const db = switchable(fx.t.db, dead.db);
      const m = new SessionManager(counting(db), { schemaName: fx.schemaName, clock });
      const { session, token } = await m.createSession(uid(), { v: 'stored' });
      clock.advance(10);
      const touchedAt = clock();
      expect(await m.getSession(token)).not.toBeNull(); // a touch, pending
      db.down();

      session.set('v', 'not stored');
      await expect(m.updateSession(session)).rejects.toBeInstanceOf(DatabaseUnavailableError);
      expect(session.isModified).toBe(true);
      // The cache still holds what the database holds, never the value that failed to be written.
      expect((await m.getSession(token))!.get('v')).toBe('stored');
      // Past maxStaleness a read needs the database: it fails loudly instead of serving old data or null.
      clock.advance(m.config.maxStaleness + 1);
      await expect(m.getSession(token)).rejects.toBeInstanceOf(DatabaseUnavailableError);
      await expect(m.flushTouches()).rejects.toBeInstanceOf(DatabaseUnavailableError);
      expect(m.pendingTouchCount).toBe(1);

      db.up();
      await m.updateSession(session);
      expect((await rawRow(fx, session.id))!.attributes.v!.v).toBe('not stored');
      expect(await m.flushTouches()).toEqual({ rows: 1, batches: 1 });
      expect((await rawRow(fx, session.id))!.last_accessed).toBe(touchedAt);
    } finally {
      await dead.close();
    }
  });
});

/** Each option with values that must be refused at construction. */
const BAD_CONFIG: [string, unknown[]][] = [
  ['maxSessions', [0, -1, 1.5, '5', Number.NaN, Number.POSITIVE_INFINITY, null, 1_000_001, 5n]],
  ['maxAttributeLength', [0, -1, 2.5, '16384', Number.NaN]],
  ['sessionExpiration', [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '3600000', null, 1e15]],
  ['inactivityDuration', [-1, Number.NaN, Number.NEGATIVE_INFINITY, '0', true]],
  ['cleanupInterval', [0, -5, Number.NaN, {}]],
  ['cacheSize', [-1, 1.5, '100', Number.NaN, 10_000_000_000]],
  [
    'tablePrefix',
    [
      'x"; drop table y; --',
      'a-b',
      '1abc',
      ' ',
      'a b',
      'é',
      'a'.repeat(64 - LONGEST_SUFFIX.length),
      42,
      null,
      'sessions"',
      "pre'fix",
      'a;b',
      'a\u0000',
    ],
  ],
  [
    'schemaName',
    ['x"; drop table y; --', '', 'pg_catalog', 'PG_temp', 'a'.repeat(64), 'a.b', 'public"', '1schema', 'sch ema', null, 7, "s'q"],
  ],
  ['lastAccessUpdateInterval', [0, -1, Number.NaN, '600000']],
  ['lastAccessUpdateBatchSize', [0, -1, 50_001, 2.5, '5000']],
  ['maxStaleness', [-1, Number.NaN, Number.POSITIVE_INFINITY, '1000']],
  ['clock', ['now', 5, {}, null]],
];

describe.each(DRIVERS)('configuration errors (%s)', (driver) => {
  const fx = useStore(driver, 'mgr_cfg_err');

  for (const [option, values] of BAD_CONFIG) {
    it(`refuses a bad ${option} at construction with a ConfigError naming it`, () => {
      for (const value of values) {
        let err: unknown;
        try {
          new SessionManager(fx.t.db, { schemaName: fx.schemaName, [option]: value });
        } catch (e) {
          err = e;
        }
        expect({ value, err }).toEqual({ value, err: expect.any(ConfigError) });
        expect((err as ConfigError).option).toBe(option);
        expect((err as ConfigError).code).toBe('CONFIG_INVALID');
        expect((err as ConfigError).message).toContain(`"${option}"`);
      }
    });
  }

  it('refuses unknown options (a typo is not silently ignored) and non-object configs', () => {
    for (const [config, option] of [
      [{ maxSession: 5 }, 'maxSession'],
      [{ schemaName: fx.schemaName, createSchemaIfMissing: true }, 'createSchemaIfMissing'],
      ['x', 'config'],
      [null, 'config'],
      [[], 'config'],
      [42, 'config'],
    ] as [unknown, string][]) {
      const err = (() => {
        try {
          new SessionManager(fx.t.db, config as never);
        } catch (e) {
          return e;
        }
      })() as ConfigError;
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.option).toBe(option);
      expect(err.message).toContain(`"${option}"`);
    }
  });

  it('refuses something that is not a Drizzle database', () => {
    for (const db of [null, undefined, {}, 'postgres://x', { query: () => 1 }]) {
      expect(() => new SessionManager(db as never)).toThrow(InvalidArgumentError);
    }
  });

  it('accepts the boundary values', async () => {
    const ok: Record<string, unknown>[] = [
      { maxSessions: 1 },
      { maxSessions: 1_000_000 },
      { inactivityDuration: 0 },
      { cacheSize: 0 },
      { maxStaleness: 0 },
      { maxAttributeLength: 1 },
      { lastAccessUpdateBatchSize: 1 },
      { lastAccessUpdateBatchSize: 50_000 },
      { tablePrefix: '' },
      // The longest prefix that leaves room for the longest derived object name.
      { tablePrefix: 'p'.repeat(63 - LONGEST_SUFFIX.length) },
      { tablePrefix: 'App_2' },
      { schemaName: 'a'.repeat(63) },
      { schemaName: '_x' },
      { sessionExpiration: 1, cleanupInterval: 1, lastAccessUpdateInterval: 1 },
    ];
    for (const config of ok) expect(() => new SessionManager(fx.t.db, config)).not.toThrow();
    const m = new SessionManager(fx.t.db, {});
    expect(m.config).toMatchObject({
      maxSessions: 5,
      maxAttributeLength: 16384,
      schemaName: 'public',
      tablePrefix: '',
      maxStaleness: 1000,
    });
  });

  it('an injection attempt in schemaName or tablePrefix runs no SQL, also through migrate()', async () => {
    await fx.t.admin.query(`CREATE TABLE ${table(fx, 'victim_')} (x int)`);
    let statements = 0;
    const db = {
      execute: (q: Parameters<typeof fx.t.db.execute>[0]) => {
        statements++;
        return fx.t.db.execute(q);
      },
      transaction: <T>(fn: Parameters<typeof fx.t.db.transaction<T>>[0]) => {
        statements++;
        return fx.t.db.transaction(fn);
      },
    };
    const evil = `x"; drop table "${fx.schemaName}"."victim_sessions"; --`;
    for (const config of [{ schemaName: evil }, { schemaName: fx.schemaName, tablePrefix: evil }]) {
      const err = (await caught(() => new SessionManager(db, config))) as ConfigError;
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.option).toBe('schemaName' in config && config.schemaName === evil ? 'schemaName' : 'tablePrefix');
      await expect(migrate(db, config)).rejects.toBeInstanceOf(ConfigError);
    }
    expect(statements).toBe(0);
    const still = await fx.t.admin.query(`SELECT to_regclass($1) AS t`, [table(fx, 'victim_')]);
    expect(still.rows[0].t).not.toBeNull();
  });
});
