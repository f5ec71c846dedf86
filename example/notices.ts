/**
 * "New sign-in: Firefox on Linux, 203.0.113.x", shown on a user's other devices after a sign-in the library
 * reports as a new device (sessionMiddleware's `onNewDevice`, README.md "New-device sign-ins").
 *
 * The library keeps sessions, not messages for them, so the app keeps its notices in a small table of its
 * own, beside the session tables: one row per other live session of the user, written once per new-device
 * sign-in, after the response (`onNewDevice` runs through `waitUntil`); read with the page that shows the
 * device list; deleted when the user dismisses it, or when it is 30 days old. Ordinary requests write
 * nothing, and a session's own row in the library's table is never touched. Copy it as it is, or send an
 * e-mail from `onNewDevice` instead.
 */
import { type SQL, sql } from 'drizzle-orm';
import type { SessionInfo, SessionManager, SqlExecutor } from 'pg-edge-session';
import type { NewDeviceEvent } from 'pg-edge-session/hono';

/** A notice as a page shows it. */
export interface SignInNotice {
  id: string;
  /** The new sign-in's session (so the page can offer to revoke it). */
  sessionId: string;
  /** "Firefox on Linux". */
  device: string;
  /** Its address with the host part hidden: "203.0.113.x", "2001:db8:1::/48"; null without one. */
  network: string | null;
  at: Date;
}

/** Notices older than this go when the next one is written (a session it was for may be long gone). */
const KEEP_DAYS = 30;
/** At most this many on a page. */
const SHOWN = 5;

/**
 * An IP address with its host part hidden, as the new-device rule groups addresses: IPv4 by /24
 * ("203.0.113.x"), IPv6 by /48 ("2001:db8:1::/48"). Null for no address (or something that is none).
 */
export function maskIp(ip: string | null): string | null {
  if (ip === null) return null;
  const v4 = /^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$/.exec(ip);
  if (v4) return `${v4[1]}.x`;
  if (!/^[0-9a-f:.]+$/i.test(ip) || !ip.includes(':')) return null;
  const [head = '', tail] = ip.split('::');
  const groups = head === '' ? [] : head.split(':');
  // "2001:db8::1": the groups a "::" stands for are zeros.
  if (tail !== undefined) while (groups.length < 3) groups.push('0');
  return `${groups.slice(0, 3).join(':')}::/48`;
}

/** The rows of a result, whatever the driver returns (`{ rows }`, or the rows themselves). */
function rowsOf<T>(result: unknown): T[] {
  return (Array.isArray(result) ? result : ((result as { rows?: T[] }).rows ?? [])) as T[];
}

/** What the notices use of a SessionManager (of any attribute type). */
type NoticeManager = Pick<SessionManager, 'config'> & { listUserSessions(userId: string): Promise<SessionInfo[]> };

export class SignInNotices {
  readonly #db: SqlExecutor;
  readonly #manager: NoticeManager;
  readonly #table: SQL;
  readonly #index: ReturnType<typeof sql.identifier>;
  #ready: Promise<void> | undefined;

  /** `db`: the app's database, the one the manager uses; the table goes beside the session tables. */
  constructor(db: SqlExecutor, manager: NoticeManager) {
    this.#db = db;
    this.#manager = manager;
    const { schemaName, tablePrefix } = manager.config;
    this.#table = sql`${sql.identifier(schemaName)}.${sql.identifier(`${tablePrefix}example_sign_in_notices`)}`;
    this.#index = sql.identifier(`${tablePrefix}example_sign_in_notices_session_idx`);
  }

  /**
   * The table, made once per process (or isolate) on first use. In one DO block so that two processes
   * starting at once do not fail each other (a concurrent CREATE TABLE IF NOT EXISTS can raise
   * unique_violation). An app with its own migrations would make it there instead.
   */
  #ensure(): Promise<void> {
    this.#ready ??= Promise.resolve(
      this.#db.execute(
        sql`DO $$ BEGIN
          CREATE TABLE IF NOT EXISTS ${this.#table} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            session_id uuid NOT NULL,
            new_session_id uuid NOT NULL,
            device text NOT NULL,
            network text,
            signed_in_at timestamptz NOT NULL
          );
          CREATE INDEX IF NOT EXISTS ${this.#index} ON ${this.#table} (session_id);
        EXCEPTION WHEN unique_violation OR duplicate_table OR duplicate_object THEN NULL;
        END $$`,
      ),
    ).then(
      () => undefined,
      (e: unknown) => {
        this.#ready = undefined; // try again on the next use
        throw e;
      },
    );
    return this.#ready;
  }

  /**
   * `onNewDevice`: a notice for each of the user's other live sessions (not impersonations: those are an
   * administrator's). Two statements (the listing, the insert, which also drops old notices), only on a
   * new-device sign-in of a user who has other sessions.
   */
  async leave(event: NewDeviceEvent): Promise<void> {
    const others = (await this.#manager.listUserSessions(event.userId))
      .filter((s) => s.id !== event.sessionId && s.impersonatedBy === null)
      .map((s) => s.id);
    if (others.length === 0) return;
    await this.#ensure();
    const at = event.at.toISOString();
    await this.#db.execute(
      sql`WITH old AS (DELETE FROM ${this.#table} WHERE signed_in_at < ${at}::timestamptz - ${`${KEEP_DAYS} days`}::interval)
          INSERT INTO ${this.#table} (session_id, new_session_id, device, network, signed_in_at)
          SELECT s::uuid, ${event.sessionId}::uuid, ${event.device ?? 'Unknown device'}, ${maskIp(event.ip)}, ${at}::timestamptz
          FROM json_array_elements_text(${JSON.stringify(others)}::json) AS s`,
    );
  }

  /** The notices for a session, newest first. */
  async list(sessionId: string): Promise<SignInNotice[]> {
    await this.#ensure();
    // clock_timestamp(): behind Cloudflare Hyperdrive, a read it must not answer from its cache.
    const rows = rowsOf<{ id: string; new_session_id: string; device: string; network: string | null; at: number }>(
      await this.#db.execute(
        sql`SELECT id::text AS id, new_session_id::text AS new_session_id, device, network,
              (extract(epoch from signed_in_at) * 1000)::float8 AS at, clock_timestamp() IS NOT NULL AS uncacheable
            FROM ${this.#table} WHERE session_id = ${sessionId}::uuid ORDER BY signed_in_at DESC, id DESC LIMIT ${SHOWN}`,
      ),
    );
    return rows.map((r) => ({ id: r.id, sessionId: r.new_session_id, device: r.device, network: r.network, at: new Date(Number(r.at)) }));
  }

  /** Deletes a notice of this session (another session's notice id deletes nothing). */
  async dismiss(sessionId: string, id: string): Promise<void> {
    await this.#ensure();
    await this.#db.execute(sql`DELETE FROM ${this.#table} WHERE id = ${id}::bigint AND session_id = ${sessionId}::uuid`);
  }
}
