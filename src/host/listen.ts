// The LISTEN connection: wake-ups from the capture triggers, a safety-net timer, and a trailing read after
// each wake-up. Every read asks the durable change record "what changed after my cursor", so a lost
// notification or a dropped connection loses nothing: after any reconnect the first read catches up
// from the same cursor before the worker reports ready.
//
// Idle: with no subscriber, no poll and no other `activity()` for `idleTimeout`, the listener flushes
// what its `beforeSleep` hook flushes (pending touches), closes its connection and sends nothing more, so
// a Neon compute can scale to zero. The next `activity()` reconnects it, and its first read catches up
// from the cursor it kept (the record is durable: nothing is missed).

import { isCursor, readChanges } from '../db/feed.ts';
import type { ObjectNames } from '../db/names.ts';
import { backoffDelay } from '../sync/backoff.ts';
import type { HostDb, ListenClient } from './db.ts';
import type { Hub } from './hub.ts';
import type { Logger } from './log.ts';
import type { HostMetrics } from './metrics.ts';
import type { ResolvedHostOptions } from './options.ts';

export interface ListenerHooks {
  /** Runs before the listener goes idle (flush pending touches); if it throws, the listener stays awake. */
  beforeSleep?: () => Promise<void>;
  /** Runs when traffic wakes the listener (run the cleanup that was skipped meanwhile). */
  afterWake?: () => void;
}

export class Listener {
  #client: ListenClient | undefined;
  #cursor: string | null = null;
  #ready = false;
  #stopped = false;
  #started = false;
  #attempt = 0;
  #reading: Promise<void> | undefined;
  #again = false;
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #settleTimer: ReturnType<typeof setTimeout> | undefined;
  #wakeBroken: (() => void) | undefined;
  #readyWaiters: (() => void)[] = [];
  #lastActivity = Date.now();
  /** Going idle (the beforeSleep hook runs) or idle. */
  #sleeping = false;
  #asleep = false;
  #wakeUp: (() => void) | undefined;

  constructor(
    private readonly o: ResolvedHostOptions,
    private readonly db: HostDb,
    private readonly names: ObjectNames,
    private readonly channel: string,
    private readonly hub: Hub,
    private readonly metrics: HostMetrics,
    private readonly log: Logger,
    private readonly hooks: ListenerHooks = {},
  ) {}

  get ready(): boolean {
    return this.#ready;
  }

  /** The snapshot the last read ended at (null before the first read): a host may persist it. */
  get cursor(): string | null {
    return this.#cursor;
  }

  /**
   * Before `start()`: read the record from this cursor on (one a host persisted before it restarted), so
   * the first read delivers what changed while the host was gone and the feed answers from memory a
   * client whose cursor is this one. Ignored once started, and for a value that is not a cursor.
   */
  resumeFrom(cursor: string | null | undefined): void {
    if (this.#started || !isCursor(cursor)) return;
    this.#cursor = cursor;
  }

  /** Idle: no connection, no query, until the next `activity()`. */
  get asleep(): boolean {
    return this.#asleep;
  }

  /** Going idle or idle: start no database work that is not needed (it would keep the database awake). */
  get resting(): boolean {
    return this.#sleeping || this.#asleep;
  }

  /**
   * Someone needs the feed (a poll, a subscription, touches): keeps the listener awake for another
   * idleTimeout, and wakes it (reconnect, catch up) when it is asleep.
   */
  activity(): void {
    this.#lastActivity = Date.now();
    if (!this.#asleep) return;
    this.#asleep = false;
    this.#sleeping = false;
    this.metrics.listenerAsleep.set(0);
    this.log('info', 'listener waking up');
    const wake = this.#wakeUp;
    this.#wakeUp = undefined;
    wake?.();
    this.hooks.afterWake?.();
  }

  /** Idle long enough: no subscriber and no activity for idleTimeout (0 turns idling off). */
  #idle(): boolean {
    return this.o.idleTimeout > 0 && this.hub.subscriberCount === 0 && Date.now() - this.#lastActivity >= this.o.idleTimeout;
  }

  /** Flushes through the hook, then drops the connection (the loop then waits for `activity()`). */
  async #goToSleep(): Promise<void> {
    if (this.#sleeping || this.#stopped) return;
    this.#sleeping = true;
    const since = this.#lastActivity;
    try {
      await this.hooks.beforeSleep?.();
    } catch (err) {
      this.#sleeping = false;
      this.log('warn', 'not going idle: flushing before it failed', { err });
      return;
    }
    // Traffic came back while flushing, or we were stopped: stay as we are.
    if (this.#lastActivity !== since || this.#stopped || !this.#idle()) {
      this.#sleeping = false;
      return;
    }
    this.#asleep = true;
    this.metrics.listenerAsleep.set(1);
    this.log('info', 'listener idle: connection closed until the next request', { idleTimeoutMs: this.o.idleTimeout });
    this.#wakeBroken?.();
  }

  /** Resolves once connected and caught up (the first time, or again after a reconnect). */
  whenReady(): Promise<void> {
    if (this.#ready) return Promise.resolve();
    return new Promise((r) => this.#readyWaiters.push(r));
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    void this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ready = false;
    clearInterval(this.#pollTimer);
    clearTimeout(this.#settleTimer);
    this.#wakeBroken?.();
    this.#wakeUp?.();
    const c = this.#client;
    this.#client = undefined;
    if (c !== undefined) await endWithin(c, 1000);
  }

  /**
   * Ends the current connection as a network cut would (the listener then reconnects and catches up).
   * @deprecated Unused by the library and its tests; kept only so that code calling it still compiles.
   */
  dropConnection(): void {
    this.#wakeBroken?.();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      const client = this.db.newListenClient();
      const broken = new Promise<void>((resolve) => {
        this.#wakeBroken = resolve;
        client.on('error', (err) => {
          this.log('warn', 'listener connection error', { err });
          resolve();
        });
        client.on('end', () => resolve());
      });
      try {
        await client.connect();
        this.#client = client;
        client.on('notification', () => {
          this.metrics.notifications.inc();
          this.#lastActivity = Date.now(); // a wake-up is traffic too
          this.#requestRead();
          this.#scheduleSettle();
        });
        await client.query(`LISTEN "${this.channel.replace(/"/g, '""')}"`);
        await this.#readOnce(); // catch up before reporting ready
        this.#attempt = 0;
        this.#setReady(true);
        this.log('info', 'listener ready', { channel: this.channel, cursor: this.#cursor });
        this.#pollTimer = setInterval(() => {
          if (this.#idle()) void this.#goToSleep();
          else this.#requestRead();
        }, this.o.pollInterval);
        await broken;
      } catch (err) {
        if (!this.#stopped) this.log('warn', 'listener failed', { err });
      }
      this.#setReady(false);
      clearInterval(this.#pollTimer);
      clearTimeout(this.#settleTimer);
      this.#client = undefined;
      await endWithin(client, 1000);
      if (this.#stopped) return;
      // Idle, or broken while nobody needs the feed: a reconnect now would wake the compute for nothing.
      if (this.#asleep || this.#idle()) {
        if (!this.#asleep) {
          this.#asleep = true;
          this.#sleeping = true;
          this.metrics.listenerAsleep.set(1);
          this.log('info', 'listener idle: not reconnecting until the next request');
        }
        await new Promise<void>((r) => (this.#wakeUp = r));
        this.#attempt = 0;
        continue;
      }
      this.metrics.reconnects.inc();
      const delay = backoffDelay(this.#attempt++, { max: this.o.maxBackoff });
      this.log('info', 'listener reconnecting', { attempt: this.#attempt, delayMs: Math.round(delay) });
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  #setReady(v: boolean): void {
    this.#ready = v;
    this.metrics.listenerReady.set(v ? 1 : 0);
    if (v) for (const r of this.#readyWaiters.splice(0)) r();
  }

  #scheduleSettle(): void {
    if (this.#settleTimer !== undefined) return;
    this.#settleTimer = setTimeout(() => {
      this.#settleTimer = undefined;
      this.#requestRead();
    }, this.o.settleDelay);
  }

  /** Coalesces read requests: one in flight, at most one queued. */
  #requestRead(): void {
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = this.#readOnce()
      .catch((err) => {
        this.log('warn', 'change read failed; reconnecting', { err });
        this.#wakeBroken?.();
      })
      .finally(() => {
        this.#reading = undefined;
        if (this.#again && this.#ready) {
          this.#again = false;
          this.#requestRead();
        }
      });
  }

  async #readOnce(): Promise<void> {
    const client = this.#client;
    if (client === undefined) throw new Error('listener not connected');
    const freshAsOf = Date.now();
    // A connection that died without telling us must not stall the feed: a read that takes too long
    // counts as a broken connection.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('change read timed out')), Math.max(2000, this.o.pollInterval * 8));
    });
    const page = await Promise.race([readChanges(this.db.overClient(client), this.names, this.#cursor), timeout]).finally(() =>
      clearTimeout(timer),
    );
    this.metrics.feedReads.inc();
    if (page.reset && this.#cursor !== null) this.metrics.feedResets.inc();
    if (page.ids.length > 0) {
      this.metrics.changesDelivered.inc(page.ids.length);
      this.#scheduleSettle();
    }
    this.hub.publish(this.#cursor, page.cursor, page.ids, page.reset && this.#cursor !== null, freshAsOf, page.versions);
    this.#cursor = page.cursor;
    this.metrics.catchupLag.set((Date.now() - freshAsOf) / 1000);
  }
}

/**
 * Closes a client without waiting forever: after its backend was terminated, Neon's client may never
 * settle `end()`, and a listener stuck there would never reconnect.
 */
async function endWithin(client: ListenClient, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([client.end().catch(() => {}), new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
