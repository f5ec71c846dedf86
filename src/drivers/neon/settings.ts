/**
 * Neon's per-connection settings: the one place that knows what a local WebSocket proxy needs. Loads
 * nothing of Neon's driver (its types only), so `pg-edge-session/host` and the Node worker can use it.
 */
import type { NeonConfig } from '@neondatabase/serverless';
import { ConfigError } from '../../core/errors.ts';

/** Settings of Neon's driver that apply per connection (`Client.neonConfig`). */
export type NeonConnectionSettings = Partial<
  Pick<
    NeonConfig,
    'wsProxy' | 'useSecureWebSocket' | 'pipelineConnect' | 'pipelineTLS' | 'coalesceWrites' | 'forceDisablePgSSL' | 'webSocketConstructor'
  >
>;

/**
 * The settings for `wsProxy` (`host:port/path` of a local WebSocket-to-TCP proxy, or unset), then
 * `neonConfig` over them.
 */
export function neonSettings(wsProxy: string | undefined, neonConfig?: NeonConnectionSettings): NeonConnectionSettings {
  const settings: NeonConnectionSettings = {};
  if (wsProxy !== undefined) {
    if (typeof wsProxy !== 'string' || wsProxy === '') {
      throw new ConfigError('wsProxy', 'expected "host:port/path" of a WebSocket proxy');
    }
    const proxy = wsProxy.replace(/^wss?:\/\//, '').replace(/\/+$/, '');
    settings.wsProxy = (host, port) => `${proxy}?address=${host}:${port}`;
    // A local proxy speaks plain ws:// to a PostgreSQL without Neon's cleartext password flow; the
    // write-coalescing delay only adds latency on loopback.
    settings.useSecureWebSocket = false;
    settings.pipelineTLS = false;
    settings.pipelineConnect = false;
    settings.coalesceWrites = false;
  }
  return { ...settings, ...neonConfig };
}
