// The package names inside this repository, from ONE list: each package.json's "exports". Writes
//   tsconfig.paths.json         `pg-edge-session[/sub]` and `pg-edge-session-worker` -> their sources
//                               (tsconfig.json extends it: tsc, tsx, esbuild and wrangler read it, and
//                               vitest.config.ts builds its alias from it), and
//   worker/tsconfig.paths.json  `pg-edge-session[/sub]` -> the library's built declarations (the worker
//                               package's build, worker/tsconfig.build.json, extends it).
// `node scripts/source-paths.mjs` rewrites both; `--check` fails when either differs from what package.json
// says (`npm run lint`, test/system/source-paths.test.ts). A source is the export's JavaScript with dist/ and .js
// taken off: dist/src/x.js <- src/x.ts, dist/main.js <- main.ts (the worker package).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const readJson = (file) => JSON.parse(readFileSync(`${root}${file}`, 'utf8'));

/** [specifier, target] for each export of the package in `dir` ('' the library, 'worker/' its worker). */
function exportsOf(dir) {
  const pkg = readJson(`${dir}package.json`);
  return Object.entries(pkg.exports)
    .filter(([, target]) => typeof target === 'object')
    .map(([sub, target]) => [`${pkg.name}${sub.slice(1)}`, target]);
}

const source = (dir, target) => `./${dir}${target.default.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts')}`;

/** The two files' text, as they should be (one path a line, as Biome formats JSON). */
export function expectedFiles() {
  const library = exportsOf('');
  const worker = exportsOf('worker/');
  const file = (entries) => {
    const lines = entries.map(([name, path]) => `      ${JSON.stringify(name)}: [${JSON.stringify(path)}]`);
    return `{\n  "compilerOptions": {\n    "paths": {\n${lines.join(',\n')}\n    }\n  }\n}\n`;
  };
  return {
    'tsconfig.paths.json': file([
      ...library.map(([name, t]) => [name, source('', t)]),
      ...worker.map(([name, t]) => [name, source('worker/', t)]),
    ]),
    'worker/tsconfig.paths.json': file(library.map(([name, t]) => [name, `.${t.types}`])),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  const stale = [];
  for (const [file, text] of Object.entries(expectedFiles())) {
    let now = '';
    try {
      now = readFileSync(`${root}${file}`, 'utf8');
    } catch {}
    if (now === text) continue;
    if (check) stale.push(file);
    else writeFileSync(`${root}${file}`, text);
  }
  if (stale.length > 0) {
    console.error(`${stale.join(', ')}: not what package.json "exports" says; run node scripts/source-paths.mjs`);
    process.exit(1);
  }
}
