/**
 * One connection of the sync host's push stream (PATHS.stream, src/protocol.ts), read event by event: the
 * reading half of the sync client's stream mode (src/sync/client.ts keeps it connected and applies what it
 * reads).
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { FeedEvent } from '../protocol.ts';

/** Longest wait a worker can ask for (Retry-After, `retry:`): it cannot park a client for longer. */
const MAX_RETRY_WAIT = 60_000;
/** Longest event (and line) the stream parser buffers, in characters: a 10,000-id event is ~400,000. */
const MAX_EVENT_CHARS = 8 * 1024 * 1024;

/** What a stream connection is opened with, and what it reports to. */
export interface StreamConnection {
  fetch: typeof fetch;
  /** The stream's URL, with the client's cursor. */
  url: string;
  headers: Record<string, string>;
  /** Aborts the connection (the client's stop, or the idle timer below). */
  abort: AbortController;
  /** Reconnect when no byte arrived for this long, ms. */
  idleTimeout: number;
  /** The client's clock. */
  now(): number;
  /** The client's cursor: an event that does not continue from it is a gap. */
  cursor(): string | null;
  /** The worker asked to wait this long before the next connection (Retry-After of a refusal, `retry:`), ms. */
  retry(ms: number): void;
  /** A changes event, its freshAsOf placed on the client's clock. */
  event(ev: FeedEvent, freshAsOf: number): void;
  /** The connection's reading ended (before its body is cancelled): no more events come from it. */
  closed(): void;
}

/**
 * Opens the stream and reads it until it ends, goes silent for idleTimeout, or shows a gap (then it
 * returns, and the client reconnects with its cursor). Throws when the worker refuses the stream or sends
 * what cannot be read.
 */
export async function readStream(c: StreamConnection): Promise<void> {
  const sentAt = c.now();
  const res = await c.fetch(c.url, { headers: { ...c.headers, accept: 'text/event-stream' }, signal: c.abort.signal });
  if (!res.ok || res.body === null) {
    c.retry(retryAfterMs(res.headers.get('retry-after')));
    await res.body?.cancel().catch(() => {});
    throw new Error(`sync worker stream answered ${res.status}`);
  }
  // The worker sends an event on every read of the record (4 a second by default): a stream that stays
  // silent longer than idleTimeout is dead (a half-open connection), so reconnect.
  let idle: ReturnType<typeof setTimeout> | undefined;
  const armIdle = () => {
    clearTimeout(idle);
    idle = setTimeout(() => c.abort.abort(new Error('sync worker stream went silent')), c.idleTimeout);
  };
  armIdle();
  const reader = res.body.pipeThrough(new TextDecoderStream() as unknown as TransformStream<Uint8Array, string>).getReader();
  try {
    await readEvents(c, reader, sentAt, armIdle);
  } finally {
    clearTimeout(idle);
    c.closed();
    await reader.cancel().catch(() => {});
  }
}

/** The event loop of readStream: every chunk re-arms the idle timer; events go to `c.event` in order. */
async function readEvents(
  c: StreamConnection,
  reader: ReadableStreamDefaultReader<string>,
  sentAt: number,
  armIdle: () => void,
): Promise<void> {
  let first = true;
  // The worker's clock minus ours is at most this (set by the first event: it was answered after
  // `sentAt`). Each event's freshAsOf is placed on our clock with it, never later than its arrival.
  let offsetBound = Number.POSITIVE_INFINITY;
  // A spec-complete parser (CRLF and CR line ends, comments, id:, retry:, multi-line data), bounded so
  // a worker that never ends a line cannot make us buffer without limit.
  const events: EventSourceMessage[] = [];
  let broken: Error | undefined;
  const parser = createParser({
    maxBufferSize: MAX_EVENT_CHARS,
    onEvent: (m) => events.push(m),
    onRetry: (ms) => c.retry(Math.min(ms, MAX_RETRY_WAIT)),
    onError: (e) => {
      if (e.type === 'max-buffer-size-exceeded') broken = e;
    },
  });
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    armIdle(); // any bytes, comments included, show the connection is alive
    parser.feed(value);
    if (broken) throw broken;
    for (const m of events.splice(0)) {
      if (m.event !== undefined && m.event !== 'changes') continue;
      const ev = JSON.parse(m.data) as FeedEvent;
      if (!first && ev.from !== c.cursor()) return; // a gap: reconnect with our cursor
      const arrived = c.now();
      if (first) offsetBound = typeof ev.now === 'number' && Number.isFinite(ev.now) ? ev.now - sentAt : Number.POSITIVE_INFINITY;
      first = false;
      const local = Number.isFinite(offsetBound) ? ev.freshAsOf - offsetBound : ev.freshAsOf;
      c.event(ev, Math.min(local, arrived));
    }
  }
}

/** A Retry-After header (seconds, or an HTTP date) in ms, at most MAX_RETRY_WAIT; 0 when absent or unreadable. */
function retryAfterMs(h: string | null): number {
  if (h === null || h.trim() === '') return 0;
  const secs = Number(h);
  const ms = Number.isFinite(secs) ? secs * 1000 : Date.parse(h) - Date.now();
  return Number.isFinite(ms) && ms > 0 ? Math.min(ms, MAX_RETRY_WAIT) : 0;
}
