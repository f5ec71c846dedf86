// The layout ARCHITECTURE.md ("Layers and imports") describes, held against the code: which files may sit
// directly in src/, how long a file may grow, and which layer may import which. Imports are read as text
// (every relative specifier of every src/ file), so a new file or a new import is checked without a list.
// test/ mirrors src/: every test file sits in the folder of the layer it tests (ARCHITECTURE.md, "Outside src/").
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'src');

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(src, join(e.parentPath, e.name)));
}

/** Relative imports of a src/ file, as paths relative to src/. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(src, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g))
    out.push(relative(src, resolve(join(src, dirname(file)), m[1] as string)));
  return out;
}

const layer = (f: string): string => (f.includes('/') ? (f.split('/')[0] as string) : 'entry');

/** What each layer may import (besides itself). Entry points may import anything. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  internal: ['core'],
  core: ['internal', 'db'],
  db: ['internal', 'core'],
  sync: ['internal', 'core', 'db', 'protocol'],
  middleware: ['internal', 'core', 'db', 'sync'],
  drivers: ['internal', 'core', 'db', 'sync', 'middleware', 'host', 'entry'],
  host: ['internal', 'core', 'db', 'sync', 'drivers', 'protocol'],
};

describe('layout (ARCHITECTURE.md, Layers and imports)', () => {
  const all = files(src);

  it('every file directly in src/ is a package entry point named in package.json exports', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    const targets = new Set(
      Object.values(pkg.exports).flatMap((t) => (typeof t === 'object' && t !== null ? Object.values(t as Record<string, string>) : [])),
    );
    const entries = [...targets]
      .filter((t) => t.startsWith('./dist/src/') && t.endsWith('.js'))
      .map((t) => `${t.slice('./dist/src/'.length, -'.js'.length)}.ts`);
    const top = all.filter((f) => !f.includes('/'));
    expect(top.length).toBeGreaterThan(5);
    expect(top.filter((f) => !entries.includes(f))).toEqual([]);
  });

  it('no file under src/ is over 400 lines (the generated migrations aside)', () => {
    const long = all
      .filter((f) => f !== 'db/migrations.ts')
      .map((f) => [f, readFileSync(join(src, f), 'utf8').replace(/\n$/, '').split('\n').length] as const)
      .filter(([, n]) => n > 400);
    expect(long).toEqual([]);
  });

  it('each folder imports only what ARCHITECTURE.md allows; src/host/ nothing of the middleware', () => {
    const crossings: string[] = [];
    for (const f of all) {
      const from = layer(f);
      if (from === 'entry') continue;
      for (const to of importsOf(f)) {
        const l = to === 'protocol.ts' ? 'protocol' : layer(to);
        if (l !== from && !(MAY_IMPORT[from] ?? []).includes(l)) crossings.push(`${f} -> ${to}`);
      }
    }
    expect(crossings).toEqual([]);
  });

  /** Biome's noExcessiveLinesPerFunction (biome.json's override for src/), on `paths`; its exit code and output. */
  const functionLengths = (paths: string[]): { ok: boolean; out: string } => {
    try {
      const out = execFileSync(join(root, 'node_modules/.bin/biome'), ['lint', '--only=complexity/noExcessiveLinesPerFunction', ...paths], {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return { ok: true, out };
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string };
      return { ok: false, out: `${x.stdout ?? ''}${x.stderr ?? ''}` };
    }
  };

  it('no function under src/ is over 80 lines (biome.json, noExcessiveLinesPerFunction)', () => {
    const r = functionLengths(['src']);
    expect(r.out).not.toContain('too many lines');
    expect(r.ok).toBe(true);
  });

  it('the function-length check finds a long function (a probe file under src/, removed after)', () => {
    const probe = join(src, 'internal', `layout-probe-${process.pid}.ts`);
    const body = Array.from({ length: 90 }, (_, i) => `  const a${i} = ${i};`).join('\n');
    writeFileSync(probe, `export function long(): number {\n${body}\n  return a0 + a89;\n}\n`);
    try {
      const r = functionLengths([relative(root, probe)]);
      expect(r.ok).toBe(false);
      expect(r.out).toContain('too many lines');
    } finally {
      rmSync(probe, { force: true });
    }
  });

  it('the import reader sees imports (a layer crossing written here would be found)', () => {
    expect(importsOf('host/app.ts').some((f) => f.startsWith('db/'))).toBe(true);
  });
});

describe('test/ mirrors src/ (ARCHITECTURE.md, Outside src/)', () => {
  const test = join(root, 'test');
  /** The folders of test/ a test file may sit in: each folder of src/, the Node worker's, and whole-system tests. */
  const folders = new Set([
    ...readdirSync(src, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name),
    'worker',
    'system',
  ]);
  const tests = readdirSync(test, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
    .map((e) => relative(test, join(e.parentPath, e.name)));

  it('no test file sits directly in test/; each is in a folder of src/, worker/ or system/', () => {
    expect(tests).toContain(join('system', 'layout.test.ts'));
    expect(tests.filter((f) => !f.includes('/'))).toEqual([]);
    expect(tests.filter((f) => !folders.has(f.split('/')[0] as string))).toEqual([]);
  });

  it('every folder of test/ but support/ is one a test file may sit in', () => {
    const dirs = readdirSync(test, { withFileTypes: true })
      .filter((e) => e.isDirectory() && e.name !== 'support')
      .map((e) => e.name);
    expect(dirs.filter((d) => !folders.has(d))).toEqual([]);
  });
});
