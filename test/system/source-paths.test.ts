// The package names inside this repository come from one list, package.json "exports": tsconfig.paths.json
// and worker/tsconfig.paths.json are generated from it (scripts/source-paths.mjs) and must say what it says.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const readJson = (file: string) => JSON.parse(readFileSync(`${root}${file}`, 'utf8'));

describe('the package names inside this repository', () => {
  it('tsconfig.paths.json and worker/tsconfig.paths.json are what package.json "exports" say (scripts/source-paths.mjs --check)', () => {
    expect(() => execFileSync(process.execPath, ['scripts/source-paths.mjs', '--check'], { cwd: root, stdio: 'pipe' })).not.toThrow();
  });

  it('every export of both packages is a path, and every source path names a file', () => {
    const sources = readJson('tsconfig.paths.json').compilerOptions.paths as Record<string, [string]>;
    const declarations = readJson('worker/tsconfig.paths.json').compilerOptions.paths as Record<string, [string]>;
    for (const dir of ['', 'worker/']) {
      const pkg = readJson(`${dir}package.json`);
      const names = Object.entries(pkg.exports)
        .filter(([, t]) => typeof t === 'object')
        .map(([sub]) => `${pkg.name}${sub.slice(1)}`);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) {
        expect(existsSync(`${root}${sources[name]?.[0]}`), name).toBe(true);
        if (dir === '') expect(declarations[name], name).toEqual([expect.stringMatching(/^\.\.\/dist\/src\/.+\.d\.ts$/)]);
      }
    }
    expect(Object.keys(sources)).toContain('pg-edge-session/host');
  });
});
