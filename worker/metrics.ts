import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics, in a registry of the worker's own (several workers can share a process). */
export function createMetrics() {
  const registry = new Registry();
  const r = [registry];
  return {
    registry,
    notifications: new Counter({
      name: 'pges_notifications_total',
      help: 'Wake-up notifications received on the LISTEN connection',
      registers: r,
    }),
    feedReads: new Counter({ name: 'pges_feed_reads_total', help: 'Reads of the change record by the listener', registers: r }),
    feedResets: new Counter({ name: 'pges_feed_resets_total', help: 'Reads that told caches to reset (bulk changes)', registers: r }),
    changesDelivered: new Counter({
      name: 'pges_changes_delivered_total',
      help: 'Changed session ids read from the change record',
      registers: r,
    }),
    feedRequests: new Counter({
      name: 'pges_feed_requests_total',
      help: 'GET /v1/changes requests, by source of the answer',
      labelNames: ['source'],
      registers: r,
    }),
    subscribers: new Gauge({ name: 'pges_subscribers', help: 'Open /v1/stream subscribers', registers: r }),
    subscribersRefused: new Counter({
      name: 'pges_subscribers_refused_total',
      help: '/v1/stream requests refused with 503 at maxSubscribers',
      registers: r,
    }),
    subscribersDropped: new Counter({
      name: 'pges_subscribers_dropped_total',
      help: 'Stream subscribers dropped for not keeping up (queue full or write timeout)',
      registers: r,
    }),
    pendingTouches: new Gauge({ name: 'pges_touches_pending', help: 'Sessions with a touch not yet written', registers: r }),
    touchesReceived: new Counter({ name: 'pges_touches_received_total', help: 'Touches received on POST /v1/touches', registers: r }),
    flushBatches: new Counter({ name: 'pges_flush_batches_total', help: 'Touch flush statements', registers: r }),
    flushRows: new Counter({ name: 'pges_flush_rows_total', help: 'Sessions whose last_accessed moved forward', registers: r }),
    flushFailures: new Counter({ name: 'pges_flush_failures_total', help: 'Failed touch flushes (retried)', registers: r }),
    flushDuration: new Histogram({ name: 'pges_flush_duration_seconds', help: 'Duration of one touch flush (all batches)', registers: r }),
    cleanupRows: new Counter({ name: 'pges_cleanup_rows_total', help: 'Rows removed by cleanup', labelNames: ['kind'], registers: r }),
    cleanupDuration: new Histogram({ name: 'pges_cleanup_duration_seconds', help: 'Duration of one cleanup run', registers: r }),
    cleanupBatchDuration: new Histogram({
      name: 'pges_cleanup_batch_duration_seconds',
      help: 'Duration of one cleanup statement',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: r,
    }),
    reconnects: new Counter({ name: 'pges_listener_reconnects_total', help: 'Listener reconnects', registers: r }),
    listenerReady: new Gauge({ name: 'pges_listener_ready', help: '1 when the listener is connected and caught up', registers: r }),
    listenerAsleep: new Gauge({
      name: 'pges_listener_idle',
      help: '1 while the listener is idle (no connection, no query: the database may scale to zero)',
      registers: r,
    }),
    catchupLag: new Gauge({ name: 'pges_catchup_lag_seconds', help: 'Duration of the latest change-record read', registers: r }),
    freshness: new Gauge({ name: 'pges_feed_age_seconds', help: 'Age of the newest freshAsOf the worker can vouch for', registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
