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

export { CookieJar } from './cookies.ts';
