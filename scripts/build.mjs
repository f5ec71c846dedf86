// `npm run build` (also run by `prepack`): dist/ = ESM JavaScript + .d.ts + source maps, by the native
// TypeScript compiler (tsc 7 has no compiler API for bundlers' declaration plugins, and one tsc run per
// tree already emits all three). Two steps: src/ with no Node types (edge-safe), then worker/ and bin/.
// tsc rewrites the sources' `./x.ts` imports to `./x.js` in JavaScript (rewriteRelativeImportExtensions)
// but keeps `.ts` in declaration files, which a consumer's tsc may refuse (TS5097) and other tools cannot
// resolve: they are rewritten here, and the build fails if any `.ts` specifier is left.
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const tsc = join(root, 'node_modules/.bin/tsc');

rmSync(dist, { recursive: true, force: true });
for (const project of ['tsconfig.build.json', 'tsconfig.build-node.json']) {
  execFileSync(tsc, ['-p', join(root, project)], { cwd: root, stdio: 'inherit' });
}

const RELATIVE_TS = /((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\.ts\2/g;
const left = [];
for (const entry of readdirSync(dist, { recursive: true, withFileTypes: true })) {
  if (!entry.isFile()) continue;
  const file = join(entry.parentPath, entry.name);
  if (entry.name.endsWith('.d.ts')) {
    const text = readFileSync(file, 'utf8');
    const fixed = text.replace(RELATIVE_TS, '$1$2$3.js$2');
    if (fixed !== text) writeFileSync(file, fixed);
  }
  if (entry.name.endsWith('.js') || entry.name.endsWith('.d.ts')) {
    if (RELATIVE_TS.test(readFileSync(file, 'utf8'))) left.push(file);
    RELATIVE_TS.lastIndex = 0;
  }
}
if (left.length > 0) throw new Error(`build: relative ".ts" imports left in ${left.join(', ')}`);
for (const bin of ['bin/pg-edge-session.js', 'worker/cli.js']) chmodSync(join(dist, bin), 0o755);
console.log(`build: ${dist}`);
