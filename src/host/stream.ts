// One push-stream subscriber (GET /v1/stream) as a Web ReadableStream, so any host that answers with a
// Response can serve it (the Node server here; a Durable Object later). Bounded: the hub hands every
// subscriber the same serialized bytes, and a subscriber that does not keep up is dropped, after
// MAX_SUBSCRIBER_QUEUE events waiting or SUBSCRIBER_WRITE_TIMEOUT_MS without taking one, whichever first.
import type { Hub, Subscriber } from './hub.ts';

/** Events waiting for one subscriber before it is dropped (references to shared frames, not copies). */
export const MAX_SUBSCRIBER_QUEUE = 256;
/** A subscriber with events waiting that took none for this long is dropped (a stalled connection). */
export const SUBSCRIBER_WRITE_TIMEOUT_MS = 10_000;

export interface SubscriberStreamOptions {
  maxQueue?: number;
  writeTimeoutMs?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
  /** Called once when the stream ends, with why. */
  onEnd?: (reason: 'closed' | 'cancelled' | 'slow') => void;
}

export interface SubscriberStream {
  /** The response body. Nothing is read from it before `begin`. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Sends the first event (the answer to the subscriber's cursor) ahead of everything published since `open`. */
  begin(first: Uint8Array): void;
  /** Ends the subscription without a response (the first answer failed). */
  cancel(): void;
}

/**
 * Subscribes to the hub now (so nothing published from here on is missed) and returns the stream, or
 * undefined when the hub refuses (full or closed).
 */
export function openSubscriberStream(hub: Hub, options: SubscriberStreamOptions = {}): SubscriberStream | undefined {
  const maxQueue = options.maxQueue ?? MAX_SUBSCRIBER_QUEUE;
  const writeTimeout = options.writeTimeoutMs ?? SUBSCRIBER_WRITE_TIMEOUT_MS;
  const now = options.now ?? Date.now;
  const queue: Uint8Array[] = [];
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  /** Set while the reader waits for an event: the next one goes straight to it. */
  let waiting: (() => void) | undefined;
  let lastTake = now();
  let ended = false;

  const end = (reason: 'closed' | 'cancelled' | 'slow') => {
    if (ended) return;
    ended = true;
    unsubscribe?.();
    queue.length = 0;
    waiting?.();
    waiting = undefined;
    try {
      if (reason === 'slow') controller.error(new Error('stream subscriber too slow: dropped'));
      else if (reason === 'closed') controller.close();
    } catch {
      // already closed or errored by the reader's side
    }
    options.onEnd?.(reason);
  };

  const subscriber: Subscriber = {
    push(frame) {
      if (ended) return;
      if (waiting !== undefined) {
        controller.enqueue(frame);
        lastTake = now();
        const w = waiting;
        waiting = undefined;
        w();
        return;
      }
      queue.push(frame);
      if (queue.length > maxQueue || now() - lastTake > writeTimeout) end('slow');
    },
    close: () => end('closed'),
  };
  const unsubscribe = hub.subscribe(subscriber);
  if (unsubscribe === undefined) return undefined;

  let began = false;
  const readable = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
      },
      // Called when the reader wants an event (highWaterMark 0: nothing is buffered ahead of it).
      pull(c) {
        lastTake = now();
        const next = queue.shift();
        if (next !== undefined) {
          c.enqueue(next);
          return;
        }
        if (ended) return;
        return new Promise<void>((r) => (waiting = r));
      },
      cancel() {
        end('cancelled');
      },
    },
    { highWaterMark: 0 },
  );
  return {
    readable,
    begin(first) {
      if (began || ended) return;
      began = true;
      lastTake = now();
      controller.enqueue(first);
    },
    cancel: () => end('cancelled'),
  };
}
