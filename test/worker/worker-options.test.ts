// The one table of the sync hosts' options (HOST_OPTION_TABLE, src/host/options.ts): the Node worker's flags,
// its environment variables and its --help (worker/config.ts), the Durable Object's environment reader
// (src/durable-object.ts) and README.md's flag table all say what it says; an unknown option is refused.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/core/errors.ts';
import { SessionSyncObject, type SessionSyncOptions, sessionSyncOptionsFromEnv } from '../../src/durable-object.ts';
import { HOST_OPTION_TABLE, type HostOptionSpec, type HostOptions, resolveHostOptions } from '../../src/host/options.ts';
import { HELP, parseCli, resolveWorkerOptions, shownDefault } from '../../worker/config.ts';
import { startWorker, type WorkerOptions } from '../../worker/main.ts';

const ROWS: readonly HostOptionSpec[] = HOST_OPTION_TABLE;
const FLAG_ROWS = ROWS.filter((r) => r.flag !== undefined);
const OBJECT_ROWS = ROWS.filter((r) => r.objectEnv !== undefined);
const SECRET = 'worker-options-secret-0123456789-abcdefgh';

/** A valid value for each row, different from its default (so a value that is dropped shows). */
const SAMPLES: Record<string, string> = {
  databaseUrl: 'postgres://u@127.0.0.1:5432/db',
  secret: SECRET,
  host: '127.0.0.2',
  schemaName: 'opts_schema',
  tablePrefix: 'opts_',
  driver: 'neon',
  neonWsProxy: '127.0.0.1:9999/v2',
};
const sample = (row: HostOptionSpec): string => {
  if (row.type === 'number') return String((row.default as number) + 1);
  const v = SAMPLES[row.key];
  if (v === undefined) throw new Error(`no sample value for ${row.key}: add one to SAMPLES`);
  return v;
};
const parsedValue = (row: HostOptionSpec): unknown => (row.type === 'number' ? Number(sample(row)) : sample(row));

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
}

describe('the host option table', () => {
  it('has one row per key, flag and variable', () => {
    for (const field of ['key', 'flag', 'env', 'objectEnv'] as const) {
      const names = ROWS.map((r) => r[field]).filter((n) => n !== undefined);
      expect({ field, names }).toEqual({ field, names: [...new Set(names)] });
    }
    for (const row of ROWS) expect(row.help, row.key).toMatch(/^[^\n]+$/);
  });

  it('resolveHostOptions fills in every default from the table and checks each value with its row', () => {
    const resolved = resolveHostOptions({}) as unknown as Record<string, unknown>;
    for (const row of ROWS.filter((r) => r.worker !== true)) expect([row.key, resolved[row.key]]).toEqual([row.key, row.default]);
    for (const row of ROWS.filter((r) => r.worker !== true && r.type === 'number')) {
      const err = caught(() => resolveHostOptions({ [row.key]: 'soon' } as HostOptions)) as ConfigError;
      expect([row.key, err]).toEqual([row.key, expect.any(ConfigError)]);
      expect(err.option).toBe(row.key);
    }
  });

  it('refuses an unknown host option with a ConfigError naming it', () => {
    const err = caught(() => resolveHostOptions({ pollIntervall: 100 } as HostOptions)) as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ code: 'CONFIG_INVALID', option: 'pollIntervall' });
    expect(err.message).toContain('unknown option');
    // A host's own keys are its to check, and only those it names.
    expect(resolveHostOptions({ databaseUrl: 'x' } as HostOptions, ['databaseUrl']).pollInterval).toBe(250);
    expect(() => resolveHostOptions({ databaseUrl: 'x' } as HostOptions)).toThrow(expect.objectContaining({ option: 'databaseUrl' }));
  });

  it('the Node worker refuses an unknown option before it connects', async () => {
    const base = { databaseUrl: 'postgres://u@127.0.0.1:1/db', secret: SECRET, log: 'silent' } as const;
    await expect(startWorker({ ...base, flushInterval: 10 } as WorkerOptions)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      option: 'flushInterval',
    });
    // Its own options are known (and checked by their rows).
    expect(resolveWorkerOptions({ ...base, port: 0, host: '::1', driver: 'pg', migrate: true }).port).toBe(0);
    expect(() => resolveWorkerOptions({ ...base, port: 70000 })).toThrow(expect.objectContaining({ option: 'port' }));
    expect(() => resolveWorkerOptions({ ...base, driver: 'mysql' as 'pg' })).toThrow(expect.objectContaining({ option: 'driver' }));
    expect(() => resolveWorkerOptions({ ...base, log: 42 as unknown as 'silent' })).toThrow(expect.objectContaining({ option: 'log' }));
  });

  it('the Durable Object refuses an unknown option (a typo in a subclass) with a typed 500 naming it', async () => {
    class Typo extends SessionSyncObject {
      protected override options(): SessionSyncOptions {
        return { databaseUrl: 'postgres://u@127.0.0.1:1/db', idleTimout: 0 } as SessionSyncOptions;
      }
    }
    const state = { storage: { get: async () => undefined, put: async () => {}, getAlarm: async () => null, setAlarm: async () => {} } };
    const r = await new Typo(state, {}).fetch(new Request('https://pg-edge-session.sync/v1/changes'));
    expect(r.status).toBe(500);
    const body = (await r.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('CONFIG_INVALID');
    expect(body.error.message).toContain('"idleTimout"');
  });
});

describe('the Node worker reads every flag and variable of the table', () => {
  it.each(FLAG_ROWS.map((r) => [r.flag as string, r] as const))('--%s, and its variable', (_flag, row) => {
    const flagArgs = row.type === 'boolean' ? [`--${row.flag}`] : [`--${row.flag}`, sample(row)];
    const want = row.type === 'boolean' ? true : parsedValue(row);
    expect(parseCli(flagArgs, {})).toMatchObject({ [row.key]: want });
    if (row.type === 'boolean') {
      expect(parseCli([], { [row.env as string]: '1' })).toMatchObject({ [row.key]: true });
      expect(parseCli([], { [row.env as string]: '0' })).toMatchObject({ [row.key]: false });
      expect((parseCli([], {}) as unknown as Record<string, unknown>)[row.key]).toBeUndefined();
      return;
    }
    expect(parseCli([], { [row.env as string]: sample(row) })).toMatchObject({ [row.key]: want });
    // The flag wins over the variable.
    const other = row.type === 'number' ? String(parsedValue(row) as number) : sample(row);
    expect(parseCli(flagArgs, { [row.env as string]: `${other}x` })).toMatchObject({ [row.key]: want });
    if (row.type === 'number') {
      expect(caught(() => parseCli([`--${row.flag}`, 'soon'], {}))).toMatchObject({ code: 'CONFIG_INVALID', option: row.flag });
      expect(caught(() => parseCli([], { [row.env as string]: 'soon' }))).toMatchObject({ option: row.env });
      expect(caught(() => parseCli([`--${row.flag}=-1e300`], {}))).toMatchObject({ option: row.flag });
    }
  });

  it('all of them at once resolve into the options a worker starts with', () => {
    const args = FLAG_ROWS.flatMap((r) => (r.type === 'boolean' ? [`--${r.flag}`] : [`--${r.flag}`, sample(r)]));
    const resolved = resolveWorkerOptions({ ...(parseCli(args, {}) as WorkerOptions), log: 'silent' }) as unknown as Record<
      string,
      unknown
    >;
    for (const row of FLAG_ROWS) expect([row.key, resolved[row.key]]).toEqual([row.key, row.type === 'boolean' ? true : parsedValue(row)]);
  });

  it('refuses a flag the table does not have', () => {
    expect(() => parseCli(['--flush-intervall', '10'], {})).toThrow(/Unknown option '--flush-intervall'/);
    expect(parseCli(['-h'], {})).toBe('help');
  });
});

describe('--help and README.md list the table', () => {
  it('--help has one line per flag row, with its variable and default, and nothing else', () => {
    const helpFlags = [...HELP.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]);
    expect(helpFlags).toEqual([...FLAG_ROWS.map((r) => r.flag), 'help']);
    // Each flag's entry: from its line up to the next flag's line.
    const entries = HELP.split(/\n(?= {2}--)/).slice(1);
    for (const [i, row] of FLAG_ROWS.entries()) {
      const entry = (entries[i] as string).replace(/\s+/g, ' ');
      expect(entry).toContain(`--${row.flag}${row.arg === undefined ? '' : ` ${row.arg}`} `);
      expect(entry).toContain(row.type === 'boolean' ? `[${row.env}=1]` : `[${row.env}]`);
      const shown = shownDefault(row);
      if (shown !== undefined) expect(entry).toContain(`${shown})`);
      expect(entry).toContain(row.help);
    }
    for (const line of HELP.split('\n')) expect(line.length, line).toBeLessThanOrEqual(120);
  });

  it("README.md's flag table has each flag with its variable and default, and no other flag", () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const tableRows = readme.split('\n').filter((l) => /^\| `--[a-z-]+`/.test(l));
    const readmeFlags = tableRows.flatMap((l) => [...(l.split('|')[1] as string).matchAll(/`--([a-z-]+)`/g)].map((m) => m[1]));
    expect(readmeFlags.sort()).toEqual(FLAG_ROWS.map((r) => r.flag).sort());
    for (const row of FLAG_ROWS) {
      const cells = (tableRows.find((l) => (l.split('|')[1] as string).includes(`\`--${row.flag}\``)) as string).split('|');
      const env = cells[2] as string;
      const def = (cells[3] as string).replace(/`/g, '');
      expect(env, row.key).toContain(row.type === 'boolean' ? `\`${row.env}=1\`` : `\`${row.env}\``);
      const shown = shownDefault(row) as string;
      expect(def, row.key).toContain(shown.startsWith('required') ? 'required' : shown);
    }
  });
});

describe('the Durable Object reads the variables the table names for it', () => {
  const doc = readFileSync(new URL('../../src/durable-object.ts', import.meta.url), 'utf8');

  it.each(OBJECT_ROWS.map((r) => [r.objectEnv as string, r] as const))('%s', (name, row) => {
    const env = { SESSION_SYNC_DATABASE_URL: 'postgres://u@127.0.0.1/db', [name]: row.type === 'boolean' ? '1' : sample(row) };
    const want = row.type === 'boolean' ? true : parsedValue(row);
    expect(sessionSyncOptionsFromEnv(env)).toMatchObject({ [row.key]: want });
    // SessionSyncEnv declares and documents it.
    expect(doc).toMatch(new RegExp(`\\b${name}\\?: string;`));
    expect(doc).toMatch(new RegExp(`\`${name}\``));
    if (row.type === 'number') {
      expect(caught(() => sessionSyncOptionsFromEnv({ ...env, [name]: 'soon' }))).toMatchObject({ code: 'CONFIG_INVALID', option: name });
      expect(caught(() => sessionSyncOptionsFromEnv({ ...env, [name]: '-1' }))).toMatchObject({ option: name });
    }
  });

  it('unset variables leave the defaults to resolveHostOptions', () => {
    const o = sessionSyncOptionsFromEnv({ DATABASE_URL: 'postgres://u@127.0.0.1/db' });
    expect(o).toEqual({ databaseUrl: 'postgres://u@127.0.0.1/db', wsProxy: undefined });
    const { databaseUrl: _u, wsProxy: _w, ...core } = o;
    expect(resolveHostOptions(core)).toEqual(resolveHostOptions({}));
  });
});
