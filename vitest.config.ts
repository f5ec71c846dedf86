import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * `pg-edge-session[/sub]` and `pg-edge-session-worker` inside this repository resolve to the sources, as
 * for tsc, tsx and esbuild: the paths of tsconfig.paths.json, which scripts/source-paths.mjs generates from
 * package.json "exports" (the package's exports point at dist/, which only `npm run build` makes).
 */
const paths = JSON.parse(readFileSync(new URL('./tsconfig.paths.json', import.meta.url), 'utf8')).compilerOptions.paths as Record<
  string,
  [string]
>;
const sourceAliases = Object.entries(paths).map(([name, [source]]) => ({
  find: new RegExp(`^${name.replace(/[/.-]/g, '\\$&')}$`),
  replacement: new URL(source, import.meta.url).pathname,
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
