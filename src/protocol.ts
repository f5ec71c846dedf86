/**
 * The wire protocol between isolates (the sync client) and the sync worker. Shared by both sides.
 * Every endpoint but /healthz and /readyz needs `Authorization: Bearer <secret>` (the scheme in any case).
 * The two probes are open to orchestrators and reveal nothing else: /healthz answers 200 while the process
 * runs, /readyz 200 `{"ready":true}` while the worker can serve the feed, else 503 `{"ready":false}`.
 */

export const PATHS = {
  /** GET ?after=CURSOR → FeedResponse */
  changes: '/v1/changes',
  /** GET ?after=CURSOR → text/event-stream of `changes` events (FeedEvent), heartbeats included */
  stream: '/v1/stream',
  /** POST TouchBatch → { accepted: number } */
  touches: '/v1/touches',
  /** GET, open: 200 while the process runs */
  healthz: '/healthz',
  /** GET, open: 200 { ready: true } or 503 { ready: false } */
  readyz: '/readyz',
  metrics: '/metrics',
} as const;

export interface FeedResponse {
  /** Pass as `after` next time. */
  cursor: string;
  /** Sessions changed or deleted since `after`: invalidate them. */
  ids: string[];
  /** Clear the whole cache (cursor unknown/too old, or a bulk change). */
  reset: boolean;
  /**
   * Every change committed before this time (ms since the epoch, the worker's clock) is included in this
   * response or an earlier one: the client may `markFresh(freshAsOf)` after applying it.
   */
  freshAsOf: number;
  /**
   * The worker's clock when it answered (ms). `now - freshAsOf` is how old the answer's knowledge is, on
   * the worker's own clock, so a client can place freshAsOf on its clock without trusting the worker's:
   * it never marks its cache fresher than (time it sent the request) − (that age). Optional: a worker
   * without it is trusted no later than the request's send time.
   */
  now?: number;
  /**
   * Optional, beside `ids` (same length, same order): the version each session's changes left it at, or
   * null when unknown (a delete, a change that did not move the version, a record from before
   * drizzle/0018; several changes of one id: null if any is, else the highest). A client may keep a cached
   * entry whose version is at least this one (it already holds the change, e.g. its own write); every other
   * id is invalidated. A worker that leaves it off, or a client that ignores it, invalidates every id.
   */
  versions?: (number | null)[];
}

/** A pushed event: like FeedResponse plus `from`, the cursor it continues (a mismatch means: resync). */
export interface FeedEvent extends FeedResponse {
  from: string;
}

/**
 * Body of POST /v1/touches: per session `[id, last, first?]` — the newest and the oldest access (ms since
 * the epoch) the client saw since it last sent that session's touches (`first` defaults to `last`). The
 * worker clamps times to its own clock, takes `first` as no earlier than the touch's arrival minus its
 * `touchMaxHold` (10 s by default: a client sends its touches at least that often, retries included), and a
 * flush never extends a session whose first access came after its idle timeout (see drizzle/0006,
 * Store.flushTouches and parseTouches in src/host/app.ts). An access held longer still counts as `last`, but
 * can no longer carry a session across its idle timeout.
 */
export interface TouchBatch {
  touches: ([string, number] | [string, number, number])[];
}

/**
 * Largest /v1/touches body the worker reads, in bytes of UTF-8: a larger one is answered 413
 * `BODY_TOO_LARGE` with `Connection: close`. The sync client cuts its pushes to fit (a touch takes about
 * 70 bytes, so about 15,000 touches fit in one body).
 */
export const MAX_TOUCH_BODY_BYTES = 1024 * 1024;
/** Most touches in one /v1/touches body (400 `BAD_REQUEST` beyond it). */
export const MAX_TOUCHES_PER_BATCH = 20000;

/** Error body of every 4xx/5xx the worker sends. */
export interface ErrorBody {
  error: { code: string; message: string };
}
