/**
 * Session rows as read from the database (src/db/rows.ts, `SessionRow`) made into the records the cache and
 * the sessions hold.
 */
import type { SessionRow } from '../db/rows.ts';
import { parseStoredAttributes } from './attributes.ts';
import { recordWeight, type SessionRecord } from './cache.ts';

/**
 * A row as the cache and sessions hold it. `jsonLength`: the length of the row's JSON text, from which (with
 * the attribute count) the record's estimated heap is weighed for the cache's byte bound (`recordWeight`).
 */
export function rowToRecord(r: SessionRow, jsonLength: number): SessionRecord {
  const attributes = parseStoredAttributes(r.attributes);
  return {
    size: recordWeight(jsonLength, attributes.size),
    id: r.id,
    userId: r.user_id,
    groupId: r.group_id,
    version: Number(r.version),
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
    lastAccessed: Number(r.last_accessed),
    expiresAt: Number(r.expires_at),
    authenticatedAt: Number(r.authenticated_at ?? r.created_at),
    impersonatedBy: r.impersonated_by ?? null,
    attributes,
  };
}
