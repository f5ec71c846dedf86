/**
 * Session rows as the statements of src/db/store.ts return them (JSON-friendly: float8 ms, text ids), and
 * the touches they flush. src/core/records.ts makes the cache's records from them.
 */

export interface SessionRow {
  id: string;
  /** Listings only (metaColumns, src/db/fragments.ts). */
  user_agent?: string | null;
  device?: string | null;
  ip?: string | null;
  label?: string | null;
  /** drizzle/0016's json, as text. */
  location?: string | null;
  user_id: string;
  group_id: string | null;
  attributes: unknown;
  version: number;
  created_at: number;
  updated_at: number;
  last_accessed: number;
  expires_at: number;
  /** When the user last proved who they are (drizzle/0012; created_at where the column is null). */
  authenticated_at?: number;
  /** The administrator who opened the session as its user (drizzle/0014), or null. */
  impersonated_by?: string | null;
}

/**
 * A touch as flushed: session id, newest access, oldest access of the run (ms; defaults to the newest). A
 * receiver of touches bounds the oldest access by what it can vouch for (src/host/app.ts, parseTouches), so
 * there it may lie after the newest; the flush's idle test is made with it.
 */
export type TouchEntry = readonly [id: string, last: number, first?: number];

/** A row as the text of its json, parsed; `textLength` weighs it in the cache. */
export interface RowText {
  row: SessionRow;
  textLength: number;
}

export interface UpdateResult extends RowText {
  updated: boolean;
  /** Why nothing was written (when `updated` is false). */
  reason?: 'expired' | 'conflict' | 'too_large';
  /** With reason too_large: the size the attributes would have had. */
  size?: number;
}

/** A session row read as the text of its json (null: no such session). */
export function parseRowText(text: string | null | undefined): RowText | undefined {
  if (text === null || text === undefined) return undefined;
  const row = JSON.parse(text) as SessionRow | null;
  return row === null ? undefined : { row, textLength: text.length };
}
