// Security properties of the core store (ARCHITECTURE.md, promises 10 and 14, and the attribute size limit):
// a dump of the tables authenticates nobody, tokens are 256 random bits in canonical base64url,
// identifiers are validated before anything reaches the database, oversized values are refused
// before any write. Cookie flags and session fixation are the middleware's (test/middleware/security-hono.test.ts).
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { AttributeTooLargeError } from '../../src/core/errors.ts';
import { SessionManager } from '../../src/core/manager.ts';
import { generateToken, isWellFormedToken } from '../../src/core/token.ts';
import type { SqlExecutor, TransactionalDatabase } from '../../src/db/executor.ts';
import { migrate } from '../../src/migrate.ts';
import { createSessionTables } from '../../src/schema.ts';
import { DRIVERS, dropSchema } from '../support/db.ts';
import { assertConfigError, assertSessionError, isCanonicalToken, MAX_TABLE_PREFIX, rejected, thrown } from '../support/fuzz.ts';
import { type StoreFixture, useStore } from '../support/store-suite.ts';

const sha256Hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

interface Dumped {
  where: string;
  value: string;
}

/**
 * Every value of every table in the schema, as text, the way an attacker with a backup would see it:
 * each column cast to text, bytea columns also as hex, base64, base64url and escape, and each row as JSON.
 */
async function dumpSchema(admin: pg.Pool, schema: string): Promise<Dumped[]> {
  const out: Dumped[] = [];
  const tables = await admin.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
    [schema],
  );
  for (const { table_name: table } of tables.rows) {
    const cols = await admin.query<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
      [schema, table],
    );
    const exprs: [string, string][] = [['(row)', `row_to_json(t)::text`]];
    for (const { column_name: c, data_type: type } of cols.rows) {
      const q = `t.${quoteIdent(c)}`;
      exprs.push([c, `${q}::text`]);
      if (type === 'bytea') {
        exprs.push(
          [`${c} hex`, `encode(${q}, 'hex')`],
          [`${c} base64`, `encode(${q}, 'base64')`],
          [`${c} base64url`, `translate(rtrim(encode(${q}, 'base64'), '='), E'+/\\n', '-_')`],
          [`${c} escape`, `encode(${q}, 'escape')`],
        );
      }
    }
    const select = exprs.map(([, e], i) => `${e} AS c${i}`).join(', ');
    const rows = await admin.query<Record<string, string | null>>(`SELECT ${select} FROM ${quoteIdent(schema)}.${quoteIdent(table)} AS t`);
    for (const row of rows.rows) {
      exprs.forEach(([name], i) => {
        const v = row[`c${i}`];
        if (typeof v === 'string') out.push({ where: `${table}.${name}`, value: v });
      });
    }
  }
  return out;
}

/** A dumped value and the ways someone might re-encode it into a cookie. */
function reencodings(v: string): string[] {
  const out = [v, v.trim()];
  const utf8 = Buffer.from(v, 'utf8');
  out.push(utf8.toString('hex'), utf8.toString('base64'), utf8.toString('base64url'));
  const hex = /^\\x([0-9a-f]*)$/i.exec(v)?.[1] ?? (/^(?:[0-9a-f]{2})+$/i.test(v) ? v : undefined);
  if (hex !== undefined) {
    const bytes = Buffer.from(hex, 'hex');
    out.push(hex, bytes.toString('base64'), bytes.toString('base64url'));
  }
  if (/^[A-Za-z0-9+/=\s_-]+$/.test(v)) {
    const bytes = Buffer.from(v.replace(/\s/g, ''), 'base64');
    out.push(bytes.toString('base64url'), bytes.toString('hex'));
  }
  return out;
}

/** Every 43-character window of every base64url run: a token hidden inside a longer value would show up. */
function windows(s: string): string[] {
  const out: string[] = [];
  for (const m of s.matchAll(/[A-Za-z0-9_-]{43,}/g)) for (let i = 0; i + 43 <= m[0].length; i++) out.push(m[0].slice(i, i + 43));
  return out;
}

async function storedRow(fx: StoreFixture, id: string): Promise<unknown> {
  const r = await fx.t.admin.query(
    `SELECT attributes::text AS attributes, version, updated_at::text AS updated_at, encode(token_hash, 'hex') AS token_hash
       FROM ${quoteIdent(fx.schemaName)}."sessions" WHERE id = $1::uuid`,
    [id],
  );
  return r.rows[0];
}

async function rowsOfUser(fx: StoreFixture, userId: string): Promise<number> {
  const r = await fx.t.admin.query(`SELECT count(*)::integer AS n FROM ${quoteIdent(fx.schemaName)}."sessions" WHERE user_id = $1`, [
    userId,
  ]);
  return r.rows[0].n as number;
}

describe('tokens (no database)', () => {
  it('1,000 tokens: unique, 43 base64url characters, canonical, 32 bytes from crypto.getRandomValues', () => {
    const spy = vi.spyOn(globalThis.crypto, 'getRandomValues');
    let tokens: string[];
    try {
      tokens = Array.from({ length: 1000 }, () => generateToken());
      expect(spy).toHaveBeenCalledTimes(1000);
      for (const [arg] of spy.mock.calls) expect((arg as ArrayBufferView).byteLength).toBeGreaterThanOrEqual(32);
    } finally {
      spy.mockRestore();
    }
    expect(new Set(tokens).size).toBe(1000);
    const ones = new Array<number>(256).fill(0);
    for (const t of tokens) {
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const bytes = Buffer.from(t, 'base64url');
      expect(bytes.length).toBe(32);
      expect(bytes.toString('base64url')).toBe(t); // canonical: the unused low bits of the last character are zero
      expect(isCanonicalToken(t)).toBe(true);
      expect(isWellFormedToken(t)).toBe(true);
      for (let bit = 0; bit < 256; bit++) ones[bit]! += (bytes[bit >> 3]! >> (bit & 7)) & 1;
    }
    // Each of the 256 bits is set in about half the tokens (binomial sd ≈ 16; ±100 is over 6 sd).
    for (const n of ones) expect(Math.abs(n - 500)).toBeLessThan(100);
  });
});

describe.each(DRIVERS)('security (%s)', (driver) => {
  const fx = useStore(driver, 'sec');

  it('a full dump of the schema contains no token and nothing that authenticates', async () => {
    const m = fx.manager();
    const sessions: { token: string; id: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const { token, session } = await m.createSession(`dump-${i}`, { role: 'admin', email: `u${i}@example.com` }, { groupId: 'g1' });
      sessions.push({ token, id: session.id });
    }
    // One rotated (its old token must be dead too), one updated, one with an attribute that looks like a token.
    const rotated = await m.rotate(sessions[0]!.token);
    const oldToken = sessions[0]!.token;
    sessions[0]!.token = rotated!.token;
    const s1 = (await m.getSession(sessions[1]!.token))!;
    s1.set('csrf', Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64url'));
    await m.updateSession(s1);

    const dump = await dumpSchema(fx.t.admin, fx.schemaName);
    expect(dump.length).toBeGreaterThan(0);
    const text = dump.map((d) => d.value).join('\n');

    // The database holds SHA-256 of each token, and no form of the token itself.
    for (const { token, id } of sessions) {
      expect(
        dump.some((d) => d.where === 'sessions.token_hash hex' && d.value === sha256Hex(token)),
        `SHA-256 of the token of ${id} is stored`,
      ).toBe(true);
      const raw = Buffer.from(token, 'base64url');
      for (const form of [token, raw.toString('hex'), raw.toString('base64'), raw.toString('base64').replace(/=+$/, '')]) {
        expect(text.includes(form)).toBe(false);
      }
    }
    expect(text.includes(oldToken)).toBe(false);

    const candidates = new Set<string>();
    for (const { value } of dump) {
      for (const v of reencodings(value)) candidates.add(v);
      for (const w of windows(value)) candidates.add(w);
    }
    const wellFormed = [...candidates].filter((c) => isWellFormedToken(c));
    // The hashes themselves, base64url-encoded, have the shape of a token: they are tried too.
    expect(wellFormed.length).toBeGreaterThanOrEqual(sessions.length);
    const reader = fx.manager({ cacheSize: 0 });
    for (const c of candidates) {
      expect(await reader.getSession(c), `dumped value ${JSON.stringify(c.slice(0, 80))} authenticates`).toBeNull();
      expect(await reader.rotate(c)).toBeNull();
    }
    // The real tokens still work (the dump was not of an empty or different store), the old one does not.
    for (const { token, id } of sessions) expect((await reader.getSession(token))?.id).toBe(id);
    expect(await reader.getSession(oldToken)).toBeNull();
  });

  it('createSession issues distinct canonical tokens and stores only their SHA-256', async () => {
    const m = fx.manager();
    const created = await Promise.all(Array.from({ length: 50 }, (_, i) => m.createSession(`tok-${i}`)));
    expect(new Set(created.map((c) => c.token)).size).toBe(50);
    for (const { token, session } of created) {
      expect(isCanonicalToken(token)).toBe(true);
      const r = await fx.t.admin.query(
        `SELECT encode(token_hash, 'hex') AS h FROM ${quoteIdent(fx.schemaName)}."sessions" WHERE id = $1::uuid`,
        [session.id],
      );
      expect(r.rows[0].h).toBe(sha256Hex(token));
      await m.deleteSession(token);
    }
  });

  describe('identifiers', () => {
    const BAD_SCHEMAS: unknown[] = [
      '',
      ' ',
      'a b',
      'a"b',
      '"',
      'x"; DROP SCHEMA public CASCADE; --',
      "a'b",
      'a;b',
      'a-b',
      'a.b',
      'public"."x',
      'schéma',
      'ß',
      'ｓｃｈｅｍａ',
      '1abc',
      'a'.repeat(64),
      'pg_evil',
      'PG_evil',
      'Pg_x',
      'a\u0000b',
      'a\nb',
      '\u202eevil',
      'x$y',
      'a\\b',
      'a'.repeat(10_000),
      null,
      42,
      {},
      ['public'],
    ];
    const BAD_PREFIXES: unknown[] = [
      ' ',
      'a b',
      'x"',
      'x"; DROP TABLE sessions; --',
      "x'",
      'x;',
      'é_',
      '1_',
      'p'.repeat(MAX_TABLE_PREFIX + 1),
      '-',
      'a-b',
      'a.b',
      '\u0000',
      'x\n',
      'ｐ_',
      '$1',
      null,
      1,
      {},
    ];

    /** A database that counts every call before it is made (migrate must make none). */
    function countingTx(db: TransactionalDatabase): TransactionalDatabase & { calls: number } {
      const w = {
        calls: 0,
        execute(q: Parameters<SqlExecutor['execute']>[0]) {
          w.calls++;
          return db.execute(q);
        },
        transaction<T>(fn: (tx: SqlExecutor) => Promise<T>): Promise<T> {
          w.calls++;
          return db.transaction(fn);
        },
      };
      return w;
    }

    it('bad schemaName / tablePrefix: ConfigError naming the option from the constructor, migrate() and createSessionTables(); nothing created', async () => {
      const tablesBefore = await fx.t.admin.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, [
        fx.schemaName,
      ]);
      const db = countingTx(fx.t.db);
      for (const [option, bads] of [
        ['schemaName', BAD_SCHEMAS],
        ['tablePrefix', BAD_PREFIXES],
      ] as const) {
        for (const bad of bads) {
          const config =
            option === 'schemaName' ? { schemaName: bad as string } : { schemaName: fx.schemaName, tablePrefix: bad as string };
          assertConfigError(
            thrown(() => new SessionManager(fx.t.db, config)),
            [option],
          );
          assertConfigError(await rejected(migrate(db, config)), [option]);
          // createSessionTables treats null/undefined as "the default".
          if (bad !== null) {
            assertConfigError(
              thrown(() => createSessionTables(config)),
              [option],
            );
          }
        }
      }
      expect(db.calls).toBe(0);

      // (PostgreSQL text cannot hold NUL, so those names could not exist anyway.)
      const storable = (s: unknown): s is string => typeof s === 'string' && !s.includes('\u0000');
      const badSchemas = BAD_SCHEMAS.filter(storable);
      const schemata = await fx.t.admin.query(`SELECT schema_name FROM information_schema.schemata WHERE schema_name = ANY($1::text[])`, [
        badSchemas,
      ]);
      expect(schemata.rows).toEqual([]);
      const derived = BAD_PREFIXES.filter(storable).flatMap((p) =>
        ['sessions', 'session_migrations', 'session_changes', 'session_create'].map((n) => p + n),
      );
      const tables = await fx.t.admin.query(
        `SELECT table_schema, table_name FROM information_schema.tables WHERE table_name = ANY($1::text[])`,
        [derived],
      );
      expect(tables.rows).toEqual([]);
      const functions = await fx.t.admin.query(`SELECT proname FROM pg_proc WHERE proname = ANY($1::text[])`, [derived]);
      expect(functions.rows).toEqual([]);
      const tablesAfter = await fx.t.admin.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, [
        fx.schemaName,
      ]);
      expect(tablesAfter.rows).toEqual(tablesBefore.rows);
      const pub = await fx.t.admin.query(`SELECT 1 FROM information_schema.schemata WHERE schema_name = 'public'`);
      expect(pub.rowCount).toBe(1);
    });

    it('valid names are quoted: a mixed-case schema and prefix are created exactly as spelt and work', async () => {
      const schemaName = `Sec_Quoted_${driver === 'node-postgres' ? 'Pg' : 'Neon'}_${process.pid}`;
      const tablePrefix = 'Order_';
      try {
        await migrate(fx.t.db, { schemaName, tablePrefix });
        const t = await fx.t.admin.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, [
          schemaName,
        ]);
        expect(t.rows.map((r) => r.table_name)).toContain('Order_sessions');
        const folded = await fx.t.admin.query(`SELECT 1 FROM information_schema.schemata WHERE schema_name = $1`, [
          schemaName.toLowerCase(),
        ]);
        expect(folded.rowCount).toBe(0);
        const m = new SessionManager(fx.t.db, { schemaName, tablePrefix });
        expect(m.names.sessions).toBe(`"${schemaName}"."Order_sessions"`);
        const { token, session } = await m.createSession('quoted', { a: 1 });
        m.clearCache();
        expect((await m.getSession(token))?.id).toBe(session.id);
      } finally {
        await dropSchema(fx.t.admin, schemaName);
      }
    });
  });

  it('oversized attribute values are refused before any write', async () => {
    const LIMIT = 1024;
    const m = fx.manager({ maxAttributeLength: LIMIT });
    const { session, token } = await m.createSession('big', { small: 'x' });
    const before = await storedRow(fx, session.id);
    const oversized: unknown[] = [
      'x'.repeat(LIMIT - 1), // JSON adds two quotes
      'é'.repeat(LIMIT / 2), // 2 bytes each in UTF-8
      '€'.repeat(342),
      '😀'.repeat(256),
      '\u0001'.repeat(171), // 6 bytes each as JSON
      { a: 'x'.repeat(LIMIT - 7) },
      Array.from({ length: 300 }, () => 1.5),
      'x'.repeat(5_000_000),
    ];
    m.db.reset();
    for (const v of oversized) {
      const size = Buffer.byteLength(JSON.stringify(v), 'utf8');
      expect(size).toBeGreaterThan(LIMIT);
      const e = thrown(() => session.set('big', v));
      assertSessionError(e, 'ATTRIBUTE_TOO_LARGE');
      expect(e).toBeInstanceOf(AttributeTooLargeError);
      expect(e).toMatchObject({ key: 'big', size, limit: LIMIT });
      expect(e.message.length).toBeLessThan(300); // the value is not echoed into logs
      const e2 = await rejected(m.createSession('big-create', { ok: 1, big: v }));
      assertSessionError(e2, 'ATTRIBUTE_TOO_LARGE');
    }
    expect(session.isModified).toBe(false);
    await m.updateSession(session);
    expect(m.db.count).toBe(0);
    expect(await storedRow(fx, session.id)).toEqual(before);
    expect(await rowsOfUser(fx, 'big-create')).toBe(0);
    expect((await m.getSession(token, { forceRefresh: true }))?.has('big')).toBe(false);

    // The limit is on UTF-8 bytes of the value's JSON, inclusive.
    for (const [v, ok] of [
      ['x'.repeat(LIMIT - 2), true],
      ['é'.repeat(LIMIT / 2 - 1), true],
      ['x'.repeat(LIMIT - 1), false],
      [`${'é'.repeat(LIMIT / 2 - 1)}x`, false],
    ] as const) {
      const e = thrown(() => session.set('edge', v));
      if (ok) expect(e).toBeUndefined();
      else assertSessionError(e, 'ATTRIBUTE_TOO_LARGE');
    }
    // The default limit is 16 KiB.
    const d = fx.manager();
    const { session: s2 } = await d.createSession('big-default');
    expect(thrown(() => s2.set('v', 'x'.repeat(16384 - 2)))).toBeUndefined();
    assertSessionError(
      thrown(() => s2.set('v', 'x'.repeat(16384 - 1))),
      'ATTRIBUTE_TOO_LARGE',
    );
  });
});
