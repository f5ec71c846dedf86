import { sql } from 'drizzle-orm';
import { bigint, customType, index, integer, jsonb, pgSchema, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { validateSchemaName, validateTablePrefix } from './core/config.ts';
import type { DeviceLocation } from './core/device.ts';
import { InvalidArgumentError } from './core/errors.ts';

/** PostgreSQL `bytea`, read and written as lower-case hex by the library's own SQL. */
const bytea = customType<{ data: string; driverData: string }>({
  dataType: () => 'bytea',
});

/** PostgreSQL `xid8` (a 64-bit transaction id, never wraps), read as text. */
const xid8 = customType<{ data: string; driverData: string }>({
  dataType: () => 'xid8',
});

/** The JSON stored per attribute: value, per-attribute version, optional expiry (ms since the epoch). */
export interface StoredAttribute {
  v: unknown;
  ver: number;
  exp?: number | null;
}

/**
 * The client a session was created for: the columns a session has, and its audit row keeps when it ends
 * (new builders on each call, one set per table).
 */
function clientColumns() {
  return {
    /** The User-Agent of the request that created the session (at most 512 characters). */
    userAgent: text('user_agent'),
    /** A short label derived from the user agent ("Firefox on Linux"). */
    device: text('device'),
    /** The client IP the app declared at creation (see the middleware's `clientIp`). */
    ip: text('ip'),
    /** A label of the app's own for the session ("Work laptop"). */
    label: text('label'),
  };
}

export interface SessionTablesOptions {
  /** Default 'public'. */
  schemaName?: string;
  /** Default ''. */
  tablePrefix?: string;
}

/**
 * Builds the Drizzle tables for a schema name and table prefix (both validated). Use it in your own
 * Drizzle schema file if you generate migrations with drizzle-kit in your project, or to run typed
 * queries against the session tables. `migrate()` creates the same objects.
 */
export function createSessionTables(options: SessionTablesOptions = {}) {
  const built = buildTables(options);
  const { schema, sessions, changes, horizon, audit, migrations } = built;
  /**
   * Everything drizzle-kit must find exported from your schema file, under the names README.md ("With
   * drizzle-kit") exports them. drizzle-kit reads only a schema file's top-level exports (a table inside an
   * exported object is not seen), so the file destructures this object into exports, with a rest element
   * passed to `everySessionTableExported()`: a table a later release adds then fails the file loudly (tsc
   * and at load, before drizzle-kit compares anything) instead of being dropped by `drizzle-kit push`.
   * `sessionSchema` is undefined for the schema public (which drizzle-kit always keeps).
   */
  const tables: SessionTables = {
    sessionSchema: schema,
    sessions,
    sessionChanges: changes,
    sessionChangesHorizon: horizon,
    sessionAudit: audit,
    sessionMigrations: migrations,
  };
  return { ...built, tables };
}

function buildTables(options: SessionTablesOptions) {
  const schemaName = validateSchemaName(options.schemaName ?? 'public');
  const p = validateTablePrefix(options.tablePrefix ?? '');
  // drizzle-kit only keeps a schema other than public when the schema object itself is exported from the
  // user's schema file (else `push` proposes to drop it): returned as `schema`.
  const schema = schemaName === 'public' ? undefined : pgSchema(schemaName);
  // The schema's table function differs from pgTable only in its schema type parameter.
  const table = (schema === undefined ? pgTable : schema.table.bind(schema)) as typeof pgTable;
  const sessions = table(
    `${p}sessions`,
    {
      /** Internal id: appears in the change feed, touches and listings. Not a credential. */
      id: uuid('id').primaryKey(),
      /** SHA-256 of the cookie token. The token itself is never stored. */
      tokenHash: bytea('token_hash').notNull(),
      userId: text('user_id').notNull(),
      groupId: text('group_id'),
      /** `{ name: { v: value, ver: version, exp?: ms } }` */
      attributes: jsonb('attributes').$type<Record<string, StoredAttribute>>().notNull().default(sql`'{}'::jsonb`),
      /** Incremented by every change of the session (not by touches). */
      version: integer('version').notNull().default(1),
      createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull(),
      updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull(),
      lastAccessed: timestamp('last_accessed', { withTimezone: true, precision: 3 }).notNull(),
      expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }).notNull(),
      ...clientColumns(),
      /**
       * When the user last proved who they are: the sign-in, or the latest `reauthenticate` (drizzle/0012).
       * Null means at creation (`created_at`): rows written before the column, or by an earlier release.
       */
      authenticatedAt: timestamp('authenticated_at', { withTimezone: true, precision: 3 }),
      /** The administrator's id when the session is an impersonation (drizzle/0014), else null. */
      impersonatedBy: text('impersonated_by'),
      /**
       * The session's cleanup deadline as last set (drizzle/0015): it may have to go from then on. Null until
       * cleanup first sets it (the absolute expiry stands for it). Touches never write it.
       */
      cleanupAt: timestamp('cleanup_at', { withTimezone: true, precision: 3 }),
      /**
       * Where the client was at sign-in (drizzle/0016): `{ country?, region?, city?, colo? }` from Cloudflare's
       * `request.cf` or a trusted proxy's header (see src/middleware/client-ip.ts), null when unknown.
       */
      location: jsonb('location').$type<DeviceLocation>(),
    },
    (t) => [
      uniqueIndex(`${p}sessions_token_hash_idx`).on(t.tokenHash),
      // listUserSessions and max-sessions eviction (a user has few sessions: they are sorted, not indexed, by
      // last access). No index holds last_accessed or the other columns updates change, so touches and
      // attribute updates are HOT updates (no index entries written) when the page has room (fillfactor,
      // drizzle/0005). Cleanup finds the sessions due through the two indexes below, which hold only columns
      // touches and attribute updates leave alone (cleanup deadlines, drizzle/0015 and 0020; store.ts, cleanupDue).
      index(`${p}sessions_user_idx`).on(t.userId),
      index(`${p}sessions_group_idx`).on(t.groupId).where(sql`${t.groupId} IS NOT NULL`),
      index(`${p}sessions_cleanup_idx`).using('btree', sql`LEAST(${t.cleanupAt}, ${t.expiresAt})`),
      index(`${p}sessions_unset_idx`).on(t.createdAt, t.expiresAt).where(sql`${t.cleanupAt} IS NULL`),
    ],
  );
  /**
   * The durable change record (filled by triggers, see drizzle/0003 and 0011): one row per changed
   * session, one per deleting statement (the id in session_id, or the ids in session_ids), or one row with
   * both null meaning "everything may have changed" (deletes of more than 10000 sessions, TRUNCATE,
   * clearAllCaches). Read by transaction id against a snapshot, so a change whose transaction
   * committed late is never skipped. Pruned by the worker after its retention.
   */
  const changes = table(
    `${p}session_changes`,
    {
      xid: xid8('xid').notNull().default(sql`pg_current_xact_id()`),
      sessionId: uuid('session_id'),
      /** The sessions one statement deleted, when it deleted 2 to 10000 (drizzle/0011); else null. */
      sessionIds: uuid('session_ids').array(),
      at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().default(sql`now()`),
      /** The version an update raised its session to (drizzle/0018); null for deletes and anything else. */
      version: integer('version'),
    },
    (t) => [index(`${p}session_changes_xid_idx`).on(t.xid)],
  );
  /**
   * Why sessions ended (drizzle/0007), when the manager's `audit` option is on: one row per session end —
   * logout, revocation, rotation (the old token's end), eviction, expiry, bulk deletes — with the session's
   * device metadata. No token and no token hash: a dump of it authenticates nobody. Pruned by the worker's
   * cleanup after `auditRetention`.
   */
  const audit = table(
    `${p}session_audit`,
    {
      id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
      sessionId: uuid('session_id').notNull(),
      userId: text('user_id').notNull(),
      groupId: text('group_id'),
      /** One of SESSION_END_REASONS. */
      reason: text('reason').notNull(),
      endedAt: timestamp('ended_at', { withTimezone: true, precision: 3 }).notNull(),
      createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull(),
      lastAccessed: timestamp('last_accessed', { withTimezone: true, precision: 3 }).notNull(),
      ...clientColumns(),
      /**
       * Who ended it (drizzle/0013): `user`, `session` (another of the user's sessions: its id in actor_id),
       * `admin` (the app's id for the administrator in actor_id), `cleanup`, `eviction` (the new session's
       * id in actor_id), `rotation`. Null on rows written before the column.
       */
      actorKind: text('actor_kind'),
      actorId: text('actor_id'),
      /**
       * SHA-256 of a fixed domain prefix and the ended token's hash (session_token_check, drizzle/0013): lets
       * the browser holding that dead token, and only it, be told why it ended. Neither the token nor its
       * hash: a dump authenticates nobody.
       */
      tokenCheck: bytea('token_check'),
      /** The ended session's impersonatedBy (drizzle/0014). */
      impersonatedBy: text('impersonated_by'),
      /**
       * Where the ended session's client was at sign-in (drizzle/0017): the session's `location` (drizzle/0016),
       * copied when it ended; null when unknown, and on rows written before the column.
       */
      location: jsonb('location').$type<DeviceLocation>(),
    },
    (t) => [
      index(`${p}session_audit_user_idx`).on(t.userId, t.endedAt),
      index(`${p}session_audit_token_check_idx`).on(t.tokenCheck),
      index(`${p}session_audit_session_idx`).on(t.sessionId),
      index(`${p}session_audit_ended_idx`).on(t.endedAt),
    ],
  );
  /** One row: change records with xid below `pruned_below` may have been pruned (cursors older → reset). */
  const horizon = table(`${p}session_changes_horizon`, {
    id: integer('id').primaryKey().default(1),
    prunedBelow: xid8('pruned_below').notNull(),
  });
  /**
   * The tags of the migrations applied (`migrate()` creates and fills it; so does `migrationSql()`). Not in
   * the default exports below, from which this repository's drizzle/ is generated (migrate() creates it
   * itself); list it in your own drizzle-kit schema so that `drizzle-kit push` does not propose to drop it.
   */
  const migrations = table(`${p}session_migrations`, {
    tag: text('tag').primaryKey(),
    appliedAt: timestamp('applied_at', { withTimezone: true }).notNull().defaultNow(),
  });
  return { schemaName, tablePrefix: p, schema, sessions, changes, horizon, audit, migrations };
}

type Built = ReturnType<typeof buildTables>;

/** The `tables` of `createSessionTables()`: every object drizzle-kit must see, by export name. */
export interface SessionTables {
  sessionSchema: Built['schema'];
  sessions: Built['sessions'];
  sessionChanges: Built['changes'];
  sessionChangesHorizon: Built['horizon'];
  sessionAudit: Built['audit'];
  sessionMigrations: Built['migrations'];
}

/**
 * For the rest element of your schema file's export list (README.md, "With drizzle-kit"): throws an
 * `InvalidArgumentError` naming every session table the list does not export, and its parameter's type
 * makes tsc report them too. drizzle-kit would otherwise not see such a table, and `drizzle-kit push`
 * would drop it with its rows.
 */
export function everySessionTableExported(notExported: Record<string, undefined>): void {
  const left = Object.entries(notExported as Record<string, unknown>).filter(([, v]) => v !== undefined);
  if (left.length === 0) return;
  const names = left.map(([k]) => k);
  throw new InvalidArgumentError(
    'notExported',
    `your drizzle-kit schema file does not export ${names.join(', ')} from createSessionTables(...).tables: add ` +
      `${names.length === 1 ? 'it' : 'them'} to the export list (drizzle-kit push drops a table it does not find exported)`,
  );
}

/** The tables for the default configuration (schema 'public', no prefix); drizzle-kit generates from these. */
export const { sessions, changes, horizon, audit } = createSessionTables();
