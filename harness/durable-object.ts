// The Durable Object host in workerd (Miniflare) from Node tests and the bench: two app Workers (two
// isolates, each with its own cache and SyncClient) bound to one SessionSyncObject hosted by a third
// Worker, all from one bundle of harness/durable-object-app.ts. The object reaches PostgreSQL with
// Neon's WebSocket driver through the local proxy (optionally through a counting TCP proxy).
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { bundleWorker, COMPATIBILITY_DATE } from './workerd.ts';

export const DO_APP_ENTRY = fileURLToPath(new URL('./durable-object-app.ts', import.meta.url));

export interface ClusterOptions {
  /** The app isolates' database (the pooled endpoint in production). */
  appDatabaseUrl: string;
  /** The object's database (the direct endpoint); e.g. through a TCP proxy that counts its bytes. */
  objectDatabaseUrl: string;
  /** `host:port/path` of the WebSocket proxy. */
  wsProxy: string;
  schemaName: string;
  maxStaleness?: number;
  syncInterval?: number;
  /** The apps' SyncClient requestTimeout (ms; default the library's). */
  requestTimeout?: number;
  /** SessionSyncEnv variables of the object (SESSION_SYNC_FLUSH_INTERVAL_MS, ...). */
  objectVars?: Record<string, string>;
  script?: string;
}

export interface Cluster {
  mf: Miniflare;
  /** fetch into app isolate 1 or 2. */
  app(n: 1 | 2): (path: string, init?: RequestInit) => Promise<Response>;
  /** The object's /__test/info (instance id, alarms run): answered without waking it. */
  info(): Promise<{ instance: string; alarms: number }>;
  /** A request to the object's own protocol (through isolate 1 and the binding). */
  object(path: string, init?: RequestInit): Promise<Response>;
  dispose(): Promise<void>;
}

let bundled: Promise<string> | undefined;
export const bundleDurableObjectApp = () => {
  bundled ??= bundleWorker(DO_APP_ENTRY);
  return bundled;
};

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const script = o.script ?? (await bundleDurableObjectApp());
  const modules = [{ type: 'ESModule' as const, path: 'app.mjs', contents: script }];
  const appBindings = {
    APP_DATABASE_URL: o.appDatabaseUrl,
    NEON_WS_PROXY: o.wsProxy,
    SESSION_SCHEMA: o.schemaName,
    MAX_STALENESS_MS: String(o.maxStaleness ?? 1000),
    SYNC_INTERVAL_MS: String(o.syncInterval ?? 100),
    REQUEST_TIMEOUT_MS: o.requestTimeout === undefined ? '' : String(o.requestTimeout),
  };
  const binding = { SESSION_SYNC: { className: 'TestSessionSync', scriptName: 'sync', useSQLite: true } };
  const mf = new Miniflare({
    workers: [
      { name: 'app1', modules, compatibilityDate: COMPATIBILITY_DATE, bindings: appBindings, durableObjects: binding },
      { name: 'app2', modules, compatibilityDate: COMPATIBILITY_DATE, bindings: appBindings, durableObjects: binding },
      {
        name: 'sync',
        modules,
        compatibilityDate: COMPATIBILITY_DATE,
        bindings: {
          ...appBindings,
          SESSION_SYNC_DATABASE_URL: o.objectDatabaseUrl,
          SESSION_SYNC_POLL_INTERVAL_MS: '100',
          ...o.objectVars,
        },
        durableObjects: { SESSION_SYNC: { className: 'TestSessionSync', useSQLite: true } },
      },
    ],
  });
  await mf.ready;
  const workers = { 1: await mf.getWorker('app1'), 2: await mf.getWorker('app2') } as unknown as Record<
    1 | 2,
    { fetch(url: string, init?: RequestInit): Promise<Response> }
  >;
  const app =
    (n: 1 | 2) =>
    (path: string, init?: RequestInit): Promise<Response> =>
      workers[n].fetch(`http://app.test${path}`, init);
  return {
    mf,
    app,
    info: async () => (await (await app(1)('/__test/object/__test/info')).json()) as { instance: string; alarms: number },
    object: (path, init) => app(1)(`/__test/object${path}`, init),
    dispose: () => mf.dispose(),
  };
}

/** Prometheus text → the sum of one metric's series. */
export function metricValue(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}
