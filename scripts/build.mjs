// `npm run build` (also run by `prepack` of both packages): ESM JavaScript + .d.ts + source maps, by the
// native TypeScript compiler (tsc 7 has no compiler API for bundlers' declaration plugins, and one tsc run
// per tree already emits all three). Three steps: the library's src/ with no Node types (edge-safe) and its
// bin/ into dist/, then the worker package (worker/, Node) into worker/dist/, typed by the first step's
// declarations.
// tsc rewrites the sources' `./x.ts` imports to `./x.js` in JavaScript (rewriteRelativeImportExtensions)
// but keeps `.ts` in declaration files, which a consumer's tsc may refuse (TS5097) and other tools cannot
// resolve: they are rewritten here, and the build fails if any `.ts` specifier is left.
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const workerDist = join(root, 'worker/dist');
const tsc = join(root, 'node_modules/.bin/tsc');

rmSync(dist, { recursive: true, force: true });
rmSync(workerDist, { recursive: true, force: true });
for (const project of ['tsconfig.build.json', 'tsconfig.build-node.json', 'worker/tsconfig.build.json']) {
  execFileSync(tsc, ['-p', join(root, project)], { cwd: root, stdio: 'inherit' });
}

const RELATIVE_TS = /((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\.ts\2/g;
const left = [];
const entries = [dist, workerDist].flatMap((d) => readdirSync(d, { recursive: true, withFileTypes: true }));
for (const entry of entries) {
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
for (const bin of [join(dist, 'bin/pg-edge-session.js'), join(workerDist, 'cli.js')]) chmodSync(bin, 0o755);
console.log(`build: ${dist}, ${workerDist}`);
