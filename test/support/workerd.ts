// Running the example Workers app inside workerd from Node tests: an esbuild bundle of example/worker.ts
// (what wrangler would build) loaded into Miniflare, plus a small cookie jar for dispatchFetch.
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export const EXAMPLE_WORKER_ENTRY = fileURLToPath(new URL('../../example/worker.ts', import.meta.url));
/** Supported by workerd 1.20260426 (Miniflare 4.20260426.0); the same date as wrangler.toml. */
export const COMPATIBILITY_DATE = '2026-04-01';

/**
 * Bundles a module worker the way wrangler does: ESM, workerd/worker/browser export conditions (so
 * packages pick their edge builds), `node:*` and `cloudflare:*` left to the runtime (nodejs_compat).
 */
export async function bundleWorker(entry = EXAMPLE_WORKER_ENTRY): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['node:*', 'cloudflare:*'],
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (out === undefined) throw new Error(`esbuild produced no output for ${entry}`);
  return out.text;
}

/** A browser's cookie store, reduced to name → value (Max-Age=0 or an empty value deletes). */
export class CookieJar {
  readonly #cookies = new Map<string, string>();
  /** The raw Set-Cookie lines of the last response taken. */
  lastSetCookie: string[] = [];

  take(res: { headers: { getSetCookie(): string[] } }): this {
    this.lastSetCookie = res.headers.getSetCookie();
    for (const line of this.lastSetCookie) {
      const [pair = '', ...attributes] = line.split(/;\s*/);
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (value === '' || attributes.some((a) => /^max-age=0$/i.test(a))) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return this;
  }

  get(name: string): string | undefined {
    return this.#cookies.get(name);
  }

  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}
