// Running the example Workers app inside workerd from Node tests: an esbuild bundle of example/worker.ts
// (what wrangler would build) loaded into Miniflare, plus a small cookie jar for dispatchFetch.
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

export const EXAMPLE_WORKER_ENTRY = fileURLToPath(new URL('../example/worker.ts', import.meta.url));
/** Supported by workerd 1.20260426 (Miniflare 4.20260426.0); the same date as wrangler.toml. */
export const COMPATIBILITY_DATE = '2026-04-01';

/**
 * Node built-ins left to workerd (nodejs_compat), as wrangler does: bare names (`events`, `util`:
 * node-postgres has them) become `node:*`, and a CommonJS `require` of one becomes an import (an ES module
 * bundle has no `require`).
 */
const nodeBuiltins: Plugin = {
  name: 'node-builtins',
  setup(b) {
    const names = new Set(builtinModules);
    const builtin = (path: string) => (path.startsWith('node:') ? path : names.has(path) ? `node:${path}` : undefined);
    b.onResolve({ filter: /^(node:)?[a-z_/]+$/ }, (args) => {
      const path = builtin(args.path);
      if (path === undefined) return undefined;
      return args.kind === 'require-call' ? { path, namespace: 'node-require' } : { path, external: true };
    });
    b.onLoad({ filter: /.*/, namespace: 'node-require' }, (args) => ({
      contents: `import m from ${JSON.stringify(args.path)}; module.exports = m;`,
      loader: 'js',
    }));
  },
};

/**
 * Bundles a module worker the way wrangler does: ESM, workerd/worker/browser export conditions (so
 * packages pick their edge builds), `node:*` and `cloudflare:*` left to the runtime (nodejs_compat);
 * `nodeBuiltins`: bare built-in names and `require`s of built-ins too (node-postgres needs it).
 */
export async function bundleWorker(entry = EXAMPLE_WORKER_ENTRY, options: { nodeBuiltins?: boolean } = {}): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    external: ['node:*', 'cloudflare:*'],
    plugins: options.nodeBuiltins ? [nodeBuiltins] : [],
    logLevel: 'silent',
  });
  const out = result.outputFiles[0];
  if (out === undefined) throw new Error(`esbuild produced no output for ${entry}`);
  return out.text;
}

export { CookieJar } from './cookies.ts';
