// The host core's metrics backed by prom-client, in a registry of the worker's own (several workers can
// share a process). Names, types and help texts come from the core's one list (METRIC_DEFINITIONS).
import { type HostMetrics, METRIC_DEFINITIONS } from 'pg-edge-session/host';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export type Metrics = HostMetrics & { registry: Registry };

export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  const out: Record<string, unknown> = {};
  for (const [key, d] of Object.entries(METRIC_DEFINITIONS)) {
    const labelNames = 'labels' in d ? [...d.labels] : [];
    if (d.type === 'counter') out[key] = new Counter({ name: d.name, help: d.help, labelNames, registers });
    else if (d.type === 'gauge') out[key] = new Gauge({ name: d.name, help: d.help, labelNames, registers });
    else
      out[key] = new Histogram({
        name: d.name,
        help: d.help,
        labelNames,
        registers,
        ...('buckets' in d ? { buckets: [...d.buckets] } : {}),
      });
  }
  out.registry = registry;
  out.render = async () => ({ body: await registry.metrics(), contentType: registry.contentType });
  return out as Metrics;
}
