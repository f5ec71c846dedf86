/**
 * The statements of the hot paths (read, create, update, delete by token, touches) for one set of object
 * names, as text with $n parameters: src/db/store.ts runs them as named prepared statements where the driver
 * allows (see `Statement` in src/db/executor.ts).
 */

import { isUuid } from '../core/token.ts';
import { AUDIT_SOURCE_TEXT, auditCteText } from './audit.ts';
import { statement } from './executor.ts';
import { MAX_DATE_MS, UNCACHEABLE_TEXT } from './fragments.ts';
import type { ObjectNames } from './names.ts';
import type { TouchEntry } from './rows.ts';

export type HotStatements = ReturnType<typeof makeHotStatements>;

const made = new WeakMap<ObjectNames, HotStatements>();

/**
 * The hot statements of a store's tables, made once per set of names: a manager bound to one request's
 * connection (src/drivers/closing.ts) makes a Store per request, and the statements' text, parameter order
 * and prepared names (a hash of each text) are the same for all of them.
 */
export function hotStatements(n: ObjectNames): HotStatements {
  let st = made.get(n);
  if (st === undefined) {
    st = makeHotStatements(n);
    made.set(n, st);
  }
  return st;
}

function makeHotStatements(n: ObjectNames) {
  const t = n.sessions;
  // $2: the session id the Session was loaded with, or null when deleting by token alone.
  const byToken = `token_hash = decode($1, 'hex') AND ($2::uuid IS NULL OR id = $2::uuid)`;
  // The touched rows are found by `id = ANY(ids)`, hash-joined to the unnested arrays: from PostgreSQL 17
  // that index scan takes the ids in order and steps from leaf to leaf instead of descending from the root
  // for each (5,000 touches of 100k sessions on 18: "Index Searches: 1", 5,032 buffers, against 20,000 for a
  // lookup per id); before 17 it costs what the lookups did (bench/README.md, "Touch flush").
  const touches = (idle: boolean) =>
    statement(`WITH u AS (
        UPDATE ${t} AS s SET last_accessed = GREATEST(s.last_accessed, v.at)
        FROM (SELECT x.id, to_timestamp(x.ms / 1000) AS at, to_timestamp(x.f / 1000) AS first
              FROM unnest($1::uuid[], $2::float8[], $3::float8[]) AS x(id, ms, f)) AS v
        WHERE s.id = ANY($1::uuid[]) AND s.id = v.id AND s.last_accessed < v.at AND s.expires_at > v.at${idle ? ' AND v.first < s.last_accessed + make_interval(secs => $4::float8 / 1000)' : ''}
        RETURNING 1
      ) SELECT count(*)::integer AS n, ${UNCACHEABLE_TEXT} FROM u`);
  const createCall = `${n.createFunction}($1::uuid, decode($2, 'hex'), $3::text, $4::text, $5::jsonb, $6::timestamptz, $7::timestamptz, $8::integer, $9::integer, $10::json, $11::text, $12::text, $13::text, $14::text, $15::boolean, $16::integer, $17::text, $18::jsonb)`;
  // The network of an address: IPv4 /24, IPv6 /48 (null stays null).
  const net = (ip: string) => `network(set_masklen(${ip}::inet, CASE family(${ip}::inet) WHEN 4 THEN 24 ELSE 48 END))`;
  const sameNetwork = (col: string) => `((${col} IS NULL AND $13::text IS NULL) OR ${net(col)} = ${net('$13::text')})`;
  // The country of a location (null: unknown; Cloudflare's "XX" means unknown too). Only a country known on
  // both sides and different tells two sign-ins apart: an unknown one matches any (README.md, "New-device sign-ins").
  const country = (location: string) => `NULLIF(${location} ->> 'country', 'XX')`;
  const sameCountry = (col: string) =>
    `(${country(col)} IS NULL OR ${country('$18::jsonb')} IS NULL OR ${country(col)} = ${country('$18::jsonb')})`;
  const byHolder = { reason: '$3::text', ended_at: '$4::timestamptz', actor_kind: `'user'`, actor_id: 'NULL::text' };
  return {
    get: statement(`SELECT ${n.getFunction}(decode($1, 'hex'))::text AS s, ${UNCACHEABLE_TEXT}`),
    create: statement(`SELECT evicted_id::text AS id, too_large, audit_error FROM ${createCall}`),
    // createSession and, read before its insert (the statement's snapshot), whether the device is new for
    // the user: no live session of theirs, and no audit row of one (those kept: auditRetention,
    // auditMaxPerUser), with the same device label on the same network in the same country (where both know
    // it). Impersonations are not the user's.
    createChecked: statement(
      `WITH k AS MATERIALIZED (SELECT NOT EXISTS (
          SELECT 1 FROM ${n.sessions} AS x WHERE x.user_id = $3::text AND x.expires_at > $6::timestamptz AND x.impersonated_by IS NULL
            AND x.device IS NOT DISTINCT FROM $12::text AND ${sameNetwork('x.ip')} AND ${sameCountry('x.location')}
        ) AND NOT EXISTS (
          SELECT 1 FROM ${n.audit} AS y WHERE y.user_id = $3::text AND y.impersonated_by IS NULL
            AND y.device IS NOT DISTINCT FROM $12::text AND ${sameNetwork('y.ip')} AND ${sameCountry('y.location')}
        ) AS new_device)
        SELECT c.evicted_id::text AS id, c.too_large, c.audit_error, k.new_device FROM k LEFT JOIN LATERAL ${createCall} AS c ON true`,
    ),
    update: statement(
      `SELECT ${n.updateFunction}($1::uuid, decode($2, 'hex'), $3::jsonb, $4::jsonb, $5::timestamptz, $6::integer, $7::jsonb, $8::integer)::text AS r`,
    ),
    deleteByToken: statement(`DELETE FROM ${t} WHERE ${byToken} RETURNING id::text AS id`),
    deleteByTokenAudited: statement(
      `WITH d AS (DELETE FROM ${t} WHERE ${byToken} RETURNING ${AUDIT_SOURCE_TEXT}), ${auditCteText(n, byHolder, '$5::integer')}
        SELECT id::text AS id, (SELECT e FROM a) AS audit_error FROM d`,
    ),
    touches: touches(false),
    touchesIdle: touches(true),
  };
}

/**
 * A batch of touches as the touch statements' three array parameters (ids, newest and oldest ms), times
 * later than `now` clamped to it; entries that cannot name a session (not a UUID, not a time) skipped.
 * Undefined when none is left.
 */
export function touchArrays(batch: readonly TouchEntry[], now: number): unknown[] | undefined {
  const ids: string[] = [];
  const lasts: number[] = [];
  const firsts: number[] = [];
  for (const [id, at, from] of batch) {
    // Whole ms within a Date's range, as a Date would keep them. Ids are checked UUIDs, so the array
    // literals below need no quoting.
    if (!isUuid(id) || !(Math.abs(at) <= MAX_DATE_MS)) continue;
    const last = Math.trunc(Math.min(at, now));
    ids.push(id);
    lasts.push(last);
    // Not capped at `last`: a receiver's bound on the first access may lie after an old last (parseTouches).
    firsts.push(typeof from === 'number' && Math.abs(from) <= MAX_DATE_MS ? Math.trunc(Math.min(from, now)) : last);
  }
  if (ids.length === 0) return undefined;
  return [`{${ids.join(',')}}`, `{${lasts.join(',')}}`, `{${firsts.join(',')}}`];
}
