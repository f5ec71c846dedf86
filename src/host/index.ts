/**
 * `pg-edge-session/host`: the sync host's core — listener, feed hub, touch buffer, cleanup runner and the
 * Hono app of the feed protocol — for hosts that run it: the Node worker (the `pg-edge-session-worker`
 * package) and the Durable Object (`pg-edge-session/durable-object`). Edge-safe: Web APIs only.
 * Applications do not need it; it is public so a host of your own can wrap the same core.
 */

export { type ObjectNames, objectNames } from '../db/names.ts';
export { type NeonHostDbOptions, neonHostDb } from '../drivers/neon/host-db.ts';
export { type NeonConnectionSettings, neonSettings } from '../drivers/neon/settings.ts';
export { isLoopbackHost, isPoolerHost } from '../internal/hosts.ts';
export { createHostApp, equalBytes, type HostAppDeps, parseTouches } from './app.ts';
export { type CleanupRun, runCleanup } from './cleanup.ts';
export { createSyncCore, type SyncCore, type SyncCoreDeps } from './core.ts';
export { type HostDb, LISTENER_APPLICATION_NAME, type ListenClient } from './db.ts';
export { Hub, MAX_ANSWER_IDS, MAX_ENTRIES, MAX_IDS, type Subscriber, sseFrame } from './hub.ts';
export { Listener, type ListenerHooks } from './listen.ts';
export { jsonLogger, type Logger } from './log.ts';
export {
  type CounterLike,
  createMemoryMetrics,
  type GaugeLike,
  type HistogramLike,
  type HostMetrics,
  type LabeledCounterLike,
  METRIC_DEFINITIONS,
} from './metrics.ts';
export {
  HOST_OPTION_TABLE,
  type HostOptionSpec,
  type HostOptions,
  logSink,
  optionsFromText,
  type ResolvedHostOptions,
  resolveHostOptions,
  type WorkerOwnOptionKey,
} from './options.ts';
export { MAX_SUBSCRIBER_QUEUE, openSubscriberStream, SUBSCRIBER_WRITE_TIMEOUT_MS, type SubscriberStream } from './stream.ts';
export { TouchBuffer } from './touches.ts';
