// The sync host's metrics: what the core counts, as an interface each host backs with what it has. The
// Node worker backs it with prom-client (pg-edge-session-worker); the Durable Object with the small
// in-memory registry below (no dependency, Web APIs only). One list of names and help texts for both, so
// a dashboard works against either host.

/** A counter without labels (prom-client's `Counter` fits). */
export interface CounterLike {
  inc(value?: number): void;
}

/** A counter with labels (prom-client's `Counter<L>` fits). */
export interface LabeledCounterLike<L extends string> {
  inc(labels: Partial<Record<L, string>>, value?: number): void;
}

/** prom-client's `Gauge` fits. */
export interface GaugeLike {
  set(value: number): void;
}

/** prom-client's `Histogram` fits. `startTimer()` returns the function that observes the elapsed seconds. */
export interface HistogramLike {
  observe(value: number): void;
  startTimer(): () => unknown;
}

type Kind = 'counter' | 'gauge' | 'histogram';

/** One metric of a kind: its exposed name and help, as written (literal types, read-only, as `as const` gives). */
function metric<const T extends Kind>(type: T) {
  return <const N extends string, const H extends string>(name: N, help: H) => ({ name, type, help }) as const;
}
const counter = metric('counter');
const gauge = metric('gauge');
const histogram = metric('histogram');

/** Every metric the core updates: key in `HostMetrics`, exposed name, type, help, labels. */
export const METRIC_DEFINITIONS = {
  notifications: counter('pges_notifications_total', 'Wake-up notifications received on the LISTEN connection'),
  feedReads: counter('pges_feed_reads_total', 'Reads of the change record by the listener'),
  feedResets: counter('pges_feed_resets_total', 'Reads that told caches to reset (bulk changes)'),
  changesDelivered: counter('pges_changes_delivered_total', 'Changed session ids read from the change record'),
  feedRequests: { ...counter('pges_feed_requests_total', 'GET /v1/changes requests, by source of the answer'), labels: ['source'] },
  subscribers: gauge('pges_subscribers', 'Open /v1/stream subscribers'),
  subscribersRefused: counter('pges_subscribers_refused_total', '/v1/stream requests refused with 503 at maxSubscribers'),
  subscribersDropped: counter(
    'pges_subscribers_dropped_total',
    'Stream subscribers dropped for not keeping up (queue full or write timeout)',
  ),
  pendingTouches: gauge('pges_touches_pending', 'Sessions with a touch not yet written'),
  touchesReceived: counter('pges_touches_received_total', 'Touches received on POST /v1/touches'),
  flushBatches: counter('pges_flush_batches_total', 'Touch flush statements'),
  flushRows: counter('pges_flush_rows_total', 'Sessions whose last_accessed moved forward'),
  flushFailures: counter('pges_flush_failures_total', 'Failed touch flushes (retried)'),
  flushDuration: histogram('pges_flush_duration_seconds', 'Duration of one touch flush (all batches)'),
  cleanupRows: { ...counter('pges_cleanup_rows_total', 'Rows removed by cleanup'), labels: ['kind'] },
  auditWriteFailures: counter(
    'pges_audit_write_failures_total',
    'Sessions cleanup ended whose audit rows could not be written (the sessions ended all the same)',
  ),
  cleanupDuration: histogram('pges_cleanup_duration_seconds', 'Duration of one cleanup run'),
  cleanupBatchDuration: {
    ...histogram('pges_cleanup_batch_duration_seconds', 'Duration of one cleanup statement'),
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  },
  reconnects: counter('pges_listener_reconnects_total', 'Listener reconnects'),
  listenerReady: gauge('pges_listener_ready', '1 when the listener is connected and caught up'),
  listenerAsleep: gauge('pges_listener_idle', '1 while the listener is idle (no connection, no query: the database may scale to zero)'),
  catchupLag: gauge('pges_catchup_lag_seconds', 'Duration of the latest change-record read'),
  freshness: gauge('pges_feed_age_seconds', 'Age of the newest freshAsOf the host can vouch for'),
} as const satisfies Record<string, { name: string; type: Kind; help: string; labels?: readonly string[]; buckets?: readonly number[] }>;

type Defs = typeof METRIC_DEFINITIONS;
type MetricOf<D> = D extends { type: 'gauge' }
  ? GaugeLike
  : D extends { type: 'histogram' }
    ? HistogramLike
    : D extends { labels: readonly (infer L extends string)[] }
      ? LabeledCounterLike<L>
      : CounterLike;

/** What the core updates, plus the exposition `GET /metrics` answers with. */
export type HostMetrics = { -readonly [K in keyof Defs]: MetricOf<Defs[K]> } & {
  render(): Promise<{ body: string; contentType: string }>;
};

/**
 * Metrics kept in memory and rendered in Prometheus' text format (counters and gauges by label set,
 * histograms as `_sum` and `_count`). For hosts without prom-client (the Durable Object), and tests.
 */
export function createMemoryMetrics(now: () => number = () => performance.now()): HostMetrics {
  const values = new Map<string, Map<string, number>>();
  const series = (name: string) => {
    let m = values.get(name);
    if (m === undefined) {
      m = new Map();
      values.set(name, m);
    }
    return m;
  };
  const key = (labels: Record<string, string | undefined> | undefined) =>
    labels === undefined
      ? ''
      : Object.entries(labels)
          .filter((e): e is [string, string] => e[1] !== undefined)
          .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`)
          .join(',');
  const add = (name: string, labels: string, by: number) => {
    const s = series(name);
    s.set(labels, (s.get(labels) ?? 0) + by);
  };
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(METRIC_DEFINITIONS) as [string, Defs[keyof Defs]][]) {
    if (d.type === 'counter') {
      out[k] = {
        inc(a?: number | Record<string, string>, b?: number) {
          if (typeof a === 'object') add(d.name, key(a), b ?? 1);
          else add(d.name, '', a ?? 1);
        },
      };
    } else if (d.type === 'gauge') {
      out[k] = { set: (v: number) => series(d.name).set('', v) };
    } else {
      const observe = (v: number) => {
        add(`${d.name}_sum`, '', v);
        add(`${d.name}_count`, '', 1);
      };
      out[k] = {
        observe,
        startTimer() {
          const t0 = now();
          return () => observe((now() - t0) / 1000);
        },
      };
    }
  }
  out.render = async () => {
    const lines: string[] = [];
    for (const d of Object.values(METRIC_DEFINITIONS)) {
      lines.push(`# HELP ${d.name} ${d.help}`, `# TYPE ${d.name} ${d.type === 'histogram' ? 'summary' : d.type}`);
      const names = d.type === 'histogram' ? [`${d.name}_sum`, `${d.name}_count`] : [d.name];
      for (const n of names) {
        const s = values.get(n);
        if (s === undefined || s.size === 0) {
          if (d.type !== 'counter' || !('labels' in d)) lines.push(`${n} 0`);
          continue;
        }
        for (const [labels, v] of s) lines.push(labels === '' ? `${n} ${v}` : `${n}{${labels}} ${v}`);
      }
    }
    return { body: `${lines.join('\n')}\n`, contentType: 'text/plain; version=0.0.4; charset=utf-8' };
  };
  return out as HostMetrics;
}
