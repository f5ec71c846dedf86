// No module under src/ calls drizzle-orm while it is evaluated. A Workers bundle that also holds a dynamic
// import (neonHostDb's, src/drivers/neon/host-db.ts) makes esbuild initialise drizzle-orm lazily, and a module
// of src/ may then be evaluated first: a module-level `sql.raw(...)` failed there ("sql.raw is not a function",
// test/system/bundle-init.test.ts). Here every drizzle-orm export src/ imports is replaced by one that throws while
// the modules of src/ are imported, then imported one by one: each must load. src/schema.ts is left out: its
// tables for drizzle-kit (`sessions`, `changes`, `horizon`, `audit`) are public exports, built as it loads.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';

const state = vi.hoisted(() => {
  const s = { evaluating: false, calls: [] as string[] };
  /** Calls still allowed as a module loads, each `<export> (<module>) at <file>`: none. */
  const allowed: string[] = [];
  const proxies = new WeakMap<object, unknown>();
  /** `value`, or a stand-in that throws when called or constructed while `s.evaluating`; its properties too. */
  const guard = (value: unknown, name: string): unknown => {
    if (typeof value !== 'function') return value;
    const known = proxies.get(value);
    if (known !== undefined) return known;
    const check = () => {
      if (!s.evaluating) return;
      const at = new Error().stack?.split('\n').find((l) => l.includes('/src/') && !l.includes('/node_modules/'));
      const file = at?.match(/\/src\/[^):]+/)?.[0] ?? 'src/';
      if (allowed.includes(`${name} at ${file}`)) return;
      const where = at?.match(/\/src\/[^):]+:\d+/)?.[0] ?? file;
      s.calls.push(`${name} at ${where}`);
      throw new Error(`drizzle-orm's ${name} called at ${where} while the module is evaluated`);
    };
    const proxy: object = new Proxy(value as (...args: unknown[]) => unknown, {
      apply(t, self, args) {
        check();
        return Reflect.apply(t, self, args);
      },
      construct(t, args, target): object {
        check();
        return Reflect.construct(t, args, target === proxy ? t : target);
      },
      get(t, key, receiver) {
        const v = Reflect.get(t, key, receiver);
        const d = Reflect.getOwnPropertyDescriptor(t, key);
        // A proxy must give a non-configurable, read-only property's own value (a class's `prototype`).
        if (d !== undefined && !d.configurable && !d.writable) return v;
        return guard(v, `${name}.${String(key)}`);
      },
    });
    proxies.set(value, proxy);
    return proxy;
  };
  const guardModule = (m: Record<string, unknown>, specifier: string) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, guard(v, `${k} (${specifier})`)]));
  return { s, guardModule };
});

// Every drizzle-orm module src/ imports a value from (the first test holds this list to src/'s imports).
const GUARDED = ['drizzle-orm', 'drizzle-orm/neon-serverless', 'drizzle-orm/pg-core'];
vi.mock('drizzle-orm', async (original) => state.guardModule(await original(), 'drizzle-orm'));
vi.mock('drizzle-orm/neon-serverless', async (original) => state.guardModule(await original(), 'drizzle-orm/neon-serverless'));
vi.mock('drizzle-orm/pg-core', async (original) => state.guardModule(await original(), 'drizzle-orm/pg-core'));

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const LEFT_OUT = ['schema.ts'];
const modules = (readdirSync(SRC, { recursive: true }) as string[])
  .filter((f) => f.endsWith('.ts') && !LEFT_OUT.includes(f))
  .map((f) => join(SRC, f))
  .sort();

describe('modules of src/ evaluated before drizzle-orm is usable', () => {
  it('the drizzle-orm modules guarded are the ones src/ imports values from', () => {
    const imported = new Set<string>();
    for (const file of modules) {
      for (const m of readFileSync(file, 'utf8').matchAll(/^import (?!type )[^;]*? from '(drizzle-orm[^']*)';/gms))
        imported.add(m[1] as string);
    }
    expect([...imported].sort()).toEqual(GUARDED);
  });

  it('no module calls drizzle-orm while it is evaluated', async () => {
    expect(modules.length).toBeGreaterThan(50);
    const failed: string[] = [];
    state.s.evaluating = true;
    try {
      for (const file of modules) {
        try {
          await import(file);
        } catch (e) {
          failed.push(`${relative(SRC, file)}: ${(e as Error).message}`);
        }
      }
    } finally {
      state.s.evaluating = false;
    }
    expect(failed).toEqual([]);
    expect(state.s.calls).toEqual([]);
  });

  it('the guard finds a call: the left-out src/schema.ts builds its tables as it loads', async () => {
    state.s.evaluating = true;
    try {
      await expect(import('../../src/schema.ts')).rejects.toThrow(/called at \/src\/schema\.ts:\d+ while the module is evaluated/);
    } finally {
      state.s.evaluating = false;
    }
    // After loading, the same exports work.
    const { sql } = await import('drizzle-orm');
    expect(sql.raw('SELECT 1').queryChunks).toHaveLength(1);
  });
});
