// The sync host's HTTP surface (Hono): feed, push stream, touch ingestion, health and metrics. One app for
// every host: the Node worker serves it with @hono/node-server, the Durable Object answers its binding's
// fetch with it. Web APIs only (Web Crypto for the secret check).
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { SessionError } from '../core/errors.ts';
import { isUuid } from '../core/token.ts';
import { isCursor, readChanges } from '../db/feed.ts';
import type { ObjectNames } from '../db/names.ts';
import type { TouchEntry } from '../db/store.ts';
import { type ErrorBody, type FeedResponse, MAX_TOUCH_BODY_BYTES, MAX_TOUCHES_PER_BATCH, PATHS } from '../protocol.ts';
import type { HostDb } from './db.ts';
import { type Hub, sseFrame } from './hub.ts';
import type { Listener } from './listen.ts';
import type { Logger } from './log.ts';
import type { HostMetrics } from './metrics.ts';
import type { ResolvedHostOptions } from './options.ts';
import { MAX_SUBSCRIBER_QUEUE, openSubscriberStream, SUBSCRIBER_WRITE_TIMEOUT_MS } from './stream.ts';
import type { TouchBuffer } from './touches.ts';

export interface HostAppDeps {
  o: Pick<ResolvedHostOptions, 'secret' | 'touchMaxHold'>;
  db: Pick<HostDb, 'pool'>;
  names: ObjectNames;
  hub: Hub;
  listener: Listener;
  touches: TouchBuffer;
  metrics: HostMetrics;
  log: Logger;
  accepting: () => boolean;
}

const encoder = new TextEncoder();
const digest = async (s: string) => new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(s)));

/**
 * Constant time in the contents (both are 32-byte digests, so the length says nothing).
 * @deprecated As an export of `pg-edge-session/host`: only `createHostApp` uses it; kept so code importing it
 * still compiles.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

function err(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

export function createHostApp(d: HostAppDeps): Hono {
  const app = new Hono();
  const secretDigest = d.o.secret === undefined ? undefined : digest(d.o.secret);

  app.onError((e, c) => {
    // The database being unreachable is not our bug: a typed 503 tells the isolate to fall back and retry.
    if (e instanceof SessionError && (e.code === 'DATABASE_UNAVAILABLE' || e.code === 'SCHEMA_MISSING')) {
      d.log('warn', 'request failed: database unavailable', { err: e, path: c.req.path });
      c.header('Retry-After', '1');
      return c.json(err(e.code, e.code === 'SCHEMA_MISSING' ? 'session tables missing' : 'database unavailable; retry later'), 503);
    }
    d.log('error', 'request failed', { err: e, path: c.req.path });
    return c.json(err('INTERNAL', 'internal error'), 500);
  });
  app.notFound((c) => c.json(err('NOT_FOUND', 'no such endpoint'), 404));

  // Once shutting down, every answer closes its connection: server.close() only closes the connections idle at
  // that moment, and keep-alive clients that keep asking (a stream reconnecting, touch pushes) would keep the
  // server open for ever, so the shutdown never reached the final touch flush.
  app.use('*', async (c, next) => {
    await next();
    if (!d.accepting()) c.header('Connection', 'close');
  });

  app.get(PATHS.healthz, (c) => c.json({ ok: true }));

  // Readiness is probed by orchestrators, which carry no secret: open, and it says nothing but ready or not.
  // An idle listener is ready: the next request reconnects it (a probe must not keep the database awake).
  app.get(PATHS.readyz, (c) =>
    (d.listener.ready || d.listener.asleep) && d.accepting() ? c.json({ ready: true }) : c.json({ ready: false }, 503),
  );

  // Everything below needs the shared secret (compared in constant time, over equal-length digests). The
  // scheme is case-insensitive (RFC 7235 §2.1); the secret is not.
  app.use('*', async (c, next) => {
    if (secretDigest === undefined) return next();
    const h = c.req.header('authorization') ?? '';
    const m = /^Bearer +(.+)$/i.exec(h);
    if (m === null || !equalBytes(await digest(m[1] as string), await secretDigest)) {
      return c.json(err('UNAUTHORIZED', 'missing or wrong bearer secret'), 401);
    }
    return next();
  });

  app.get(PATHS.metrics, async (c) => {
    const latest = d.hub.latest;
    d.metrics.freshness.set(latest ? (Date.now() - latest.freshAsOf) / 1000 : -1);
    d.metrics.subscribers.set(d.hub.subscriberCount);
    const { body, contentType } = await d.metrics.render();
    return c.body(body, 200, { 'content-type': contentType });
  });

  addFeedRoutes(app, d);
  addTouchRoute(app, d);
  return app;
}

/** GET /v1/changes and /v1/stream: answers from the listener's chain of reads in memory, else from the record. */
function addFeedRoutes(app: Hono, d: HostAppDeps): void {
  /** The answer from the chain of reads in memory, when the listener vouches for it; synchronous. */
  const fromMemory = (after: string | undefined): FeedResponse | undefined => {
    const latest = d.hub.latest;
    if (latest === undefined || !d.listener.ready) return undefined;
    if (after !== undefined && isCursor(after)) return d.hub.answer(after);
    return { cursor: latest.cursor, ids: [], reset: true, freshAsOf: latest.freshAsOf };
  };
  /** A cursor of another replica, one older than our memory, or the listener is down: ask the record. */
  const fromDatabase = async (after: string | undefined): Promise<FeedResponse> => {
    const latest = d.listener.ready ? d.hub.latest : undefined;
    const startedAt = Date.now();
    const page = await readChanges(d.db.pool, d.names, after);
    // Continue on our own chain: everything up to `latest` is included (the read came after it).
    if (latest !== undefined)
      return { cursor: latest.cursor, ids: page.ids, reset: page.reset, freshAsOf: latest.freshAsOf, versions: page.versions };
    return { ...page, freshAsOf: startedAt };
  };
  const answer = (after: string | undefined): FeedResponse | Promise<FeedResponse> => {
    const mem = fromMemory(after);
    d.metrics.feedRequests.inc({ source: mem === undefined ? 'database' : 'memory' });
    return mem ?? fromDatabase(after);
  };

  // A missing or malformed cursor is not an error: the answer is a reset and a new cursor. `now` lets the
  // client place freshAsOf on its own clock (see FeedResponse.now).
  app.get(PATHS.changes, async (c) => {
    d.listener.activity();
    return c.json({ ...(await answer(c.req.query('after'))), now: Date.now() });
  });

  app.get(PATHS.stream, async (c) => {
    if (!d.accepting()) return c.json(err('SHUTTING_DOWN', 'worker is shutting down'), 503);
    d.listener.activity();
    const q = c.req.query('after');
    const after = q !== undefined && isCursor(q) ? q : undefined;
    // Subscribed before the first answer is made, so nothing published in between is missed. From memory
    // the answer is made in the same tick, so the first pushed event continues exactly at its cursor.
    const sub = openSubscriberStream(d.hub, {
      onEnd: (reason) => {
        d.metrics.subscribers.set(d.hub.subscriberCount);
        if (reason === 'slow') {
          d.metrics.subscribersDropped.inc();
          d.log('info', 'stream subscriber dropped: too slow', {
            queue: MAX_SUBSCRIBER_QUEUE,
            writeTimeoutMs: SUBSCRIBER_WRITE_TIMEOUT_MS,
          });
        }
      },
    });
    if (sub === undefined) {
      if (!d.accepting()) return c.json(err('SHUTTING_DOWN', 'worker is shutting down'), 503);
      d.metrics.subscribersRefused.inc();
      // Spread the retries of a crowd that was refused together.
      c.header('Retry-After', String(5 + Math.floor(Math.random() * 6)));
      return c.json(err('TOO_MANY_SUBSCRIBERS', `at most ${d.hub.maxSubscribers} stream subscribers; poll or retry later`), 503);
    }
    d.metrics.subscribers.set(d.hub.subscriberCount);
    let first: FeedResponse;
    try {
      first = await answer(after);
    } catch (e) {
      // A database that cannot be reached is a typed 503 (through onError), not a 200 stream that ends at once.
      sub.cancel();
      throw e;
    }
    sub.begin(sseFrame({ ...first, from: q ?? '', now: Date.now() }));
    return new Response(sub.readable, {
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' },
    });
  });
}

/** POST /v1/touches: a bounded, validated batch into the touch buffer. */
function addTouchRoute(app: Hono, d: HostAppDeps): void {
  app.post(
    PATHS.touches,
    bodyLimit({
      maxSize: MAX_TOUCH_BODY_BYTES,
      // The rest of the body is never read, so this connection cannot carry another request: say so, or a
      // keep-alive client sends its next request into a socket the server then closes ("socket hang up").
      onError: (c) => {
        c.header('Connection', 'close');
        return c.json(err('BODY_TOO_LARGE', `body over ${MAX_TOUCH_BODY_BYTES} bytes`), 413);
      },
    }),
    async (c) => {
      if (!d.accepting()) return c.json(err('SHUTTING_DOWN', 'worker is shutting down'), 503);
      d.listener.activity();
      let body: unknown;
      try {
        body = JSON.parse(await c.req.text());
      } catch {
        return c.json(err('BAD_REQUEST', 'body is not JSON'), 400);
      }
      const parsed = parseTouches(body, Date.now(), d.o.touchMaxHold);
      if (typeof parsed === 'string') return c.json(err('BAD_REQUEST', parsed), 400);
      if (!d.touches.add(parsed)) return c.json(err('OVERLOADED', 'too many pending touches; retry later'), 503);
      return c.json({ accepted: parsed.length });
    },
  );
}

/**
 * Validates a touch batch; returns `[id, last, first]` entries, or a message saying what is wrong (nothing
 * partial). Times are clamped to `now`, the receiver's clock: an isolate whose clock runs ahead (or a
 * client that lies) cannot push a last access into the future, where it would keep a session alive past
 * its idle timeout. A run's first access is what the flush's idle test is made with, so it is taken as no
 * earlier than `now - maxHold` (the longest a client may hold an access, HostOptions.touchMaxHold): a sender
 * cannot revive a session that was idle-expired for longer than that by back-dating it. It may then lie
 * after `last` (an access held longer than that still moves last_accessed, but only of a session alive at
 * `now - maxHold`).
 */
export function parseTouches(body: unknown, now: number, maxHold: number): TouchEntry[] | string {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'expected {"touches": [[sessionId, ms, firstMs?], ...]}';
  const t = (body as { touches?: unknown }).touches;
  if (!Array.isArray(t)) return '"touches" must be an array';
  if (t.length > MAX_TOUCHES_PER_BATCH) return `at most ${MAX_TOUCHES_PER_BATCH} touches per request`;
  const out: TouchEntry[] = [];
  for (let i = 0; i < t.length; i++) {
    const p = t[i];
    if (!Array.isArray(p) || (p.length !== 2 && p.length !== 3)) return `touches[${i}] must be [sessionId, ms] or [sessionId, ms, firstMs]`;
    const [id, at, from = at] = p;
    if (!isUuid(id)) return `touches[${i}][0] is not a session id`;
    if (!isTime(at)) return `touches[${i}][1] must be ms since the epoch`;
    if (!isTime(from) || from > at) return `touches[${i}][2] must be ms since the epoch, not after touches[${i}][1]`;
    const last = Math.min(at, now);
    out.push([id.toLowerCase(), last, Math.max(Math.min(from, last), now - maxHold)]);
  }
  return out;
}

function isTime(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= 8.64e15;
}
