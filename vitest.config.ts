import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * `pg-edge-session[/sub]` inside this repository (example/ imports it like an app does) resolves to the
 * sources, as tsconfig.json's `paths` say for tsc, tsx and esbuild: the package's exports point at dist/,
 * which only `npm run build` makes. dist/src/x.js <- src/x.ts, dist/worker/x.js <- worker/x.ts.
 */
const exportsMap = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).exports as Record<
  string,
  string | { default: string }
>;
const sourceAliases = Object.entries(exportsMap)
  .filter((e): e is [string, { default: string }] => typeof e[1] === 'object')
  .map(([sub, target]) => ({
    find: new RegExp(`^pg-edge-session${sub.slice(1).replace(/[/.]/g, '\\$&')}$`),
    replacement: new URL(target.default.replace(/^\.\/dist\//, './').replace(/\.js$/, '.ts'), import.meta.url).pathname,
  }));

export default defineConfig({
  resolve: { alias: sourceAliases },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
