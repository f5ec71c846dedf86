// `npm run bench [-- --quick] [-- --only=miss,writes] [-- --reps=N]`
// Runs the sections against one PostgreSQL (DATABASE_URL, else an embedded one), prints a markdown table
// and writes the same figures as JSON to bench/results/latest.json (kept in git) and a timestamped copy in
// bench/results/history/ (git-ignored).
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { BenchContext, Section } from './lib/context.ts';
import { openDatabase } from './lib/db.ts';
import { warmupPolicy, warmupWindows } from './lib/measure.ts';
import { Report, writeJsonAtomic } from './lib/report.ts';
import { SECTIONS } from './sections/index.ts';

interface Options {
  quick: boolean;
  only: string[] | undefined;
  reps: number | undefined;
  sizes: number[] | undefined;
}

const USAGE = `Usage: npm run bench -- [--quick] [--only=section[,section...]] [--reps=N] [--sizes=N,M]

  --quick        short repetitions and smaller data (whole run about 4 minutes)
  --only=NAMES   run only these sections: ${SECTIONS.map((s) => s.name).join(', ')}
  --reps=N       measured repetitions per figure (default 3 with --quick, else 5; at least 3)
  --sizes=N,M    table sizes (sessions) of the scale section (default 100000,1000000 with --quick,
                 else 1000000,10000000); growth goals compare the last size with the first

Uses DATABASE_URL when set, else starts an embedded PostgreSQL for the run.`;

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, only: undefined, reps: undefined, sizes: undefined };
  for (const a of argv) {
    if (a === '--quick') o.quick = true;
    else if (a.startsWith('--only=')) o.only = a.slice('--only='.length).split(',').filter(Boolean);
    else if (a.startsWith('--reps=')) o.reps = Number(a.slice('--reps='.length));
    else if (a.startsWith('--sizes=')) o.sizes = a.slice('--sizes='.length).split(',').filter(Boolean).map(Number);
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}\n\n${USAGE}`);
      process.exit(2);
    }
  }
  if (o.reps !== undefined && (!Number.isInteger(o.reps) || o.reps < 3)) {
    console.error('--reps must be an integer ≥ 3 (figures are medians of at least 3 repetitions)');
    process.exit(2);
  }
  if (o.sizes !== undefined && (o.sizes.length === 0 || o.sizes.some((n) => !Number.isInteger(n) || n < 1000))) {
    console.error('--sizes takes integers ≥ 1000, comma-separated');
    process.exit(2);
  }
  const unknown = o.only?.filter((n) => !SECTIONS.some((s) => s.name === n)) ?? [];
  if (unknown.length > 0) {
    console.error(`unknown section(s) ${unknown.join(', ')}; sections: ${SECTIONS.map((s) => s.name).join(', ')}`);
    process.exit(2);
  }
  return o;
}

/** Other work above this share of all CPUs (while the bench is idle) flags a section as measured on a busy machine. */
const BUSY_SHARE = 0.25;

function isBusy(load1: number, otherCpu: number | undefined, cores: number): boolean {
  return otherCpu === undefined ? load1 > cores : otherCpu > BUSY_SHARE;
}

/** Share of all CPUs busy during one second, from /proc/stat (Linux); undefined elsewhere. */
async function cpuBusyWhileIdle(): Promise<number | undefined> {
  const sample = () => {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { idle, total: fields.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = sample();
    await new Promise((r) => setTimeout(r, 1000));
    const b = sample();
    const total = b.total - a.total;
    return total > 0 ? Math.max(0, 1 - (b.idle - a.idle) / total) : undefined;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const started = new Date();
  const t0 = performance.now();
  const log = (s: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${s}\n`);
  const sections: Section[] = opts.only === undefined ? SECTIONS : SECTIONS.filter((s) => opts.only?.includes(s.name));
  const reps = opts.reps ?? (opts.quick ? 3 : 5);
  // Warm-ups repeat until the rate stops climbing (measure.ts, warmUp).
  warmupPolicy.maxWindows = opts.quick ? 5 : 10;
  const cores = cpus().length;
  /**
   * Before each section: the 1-minute load average (it includes this run's own previous section, so it is
   * high after any concurrent section) and the share of all CPUs busy during one second while the bench
   * itself is idle (/proc/stat): that is other work, and what flags a run as busy.
   */
  const loads: { section: string; load1: number; otherCpu: number | undefined }[] = [];

  const database = await openDatabase();
  log(`PostgreSQL ${database.version} (${database.source}); ${opts.quick ? 'quick' : 'full'} mode, ${reps} repetitions per figure`);
  const admin = new pg.Pool({ connectionString: database.url, max: 4 });
  admin.on('error', () => {});
  const report = new Report();
  const errors: { section: string; error: string }[] = [];
  const stop = async () => {
    await admin.end().catch(() => {});
    await database.stop().catch(() => {});
  };
  const onSignal = () => {
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    for (const section of sections) {
      const s0 = performance.now();
      const otherCpu = await cpuBusyWhileIdle();
      const load1 = loadavg()[0] ?? 0;
      loads.push({ section: section.name, load1, otherCpu });
      const other = otherCpu === undefined ? '' : `; other work ${(otherCpu * 100).toFixed(0)}% of the CPUs`;
      log(
        `== ${section.title} (${section.name}); load average ${load1.toFixed(2)} on ${cores} cores${other}${isBusy(load1, otherCpu, cores) ? ' (busy)' : ''}`,
      );
      const ctx: BenchContext = {
        url: database.url,
        quick: opts.quick,
        reps,
        repMs: opts.quick ? 500 : 2000,
        warmupMs: opts.quick ? 500 : 1000,
        admin,
        report,
        add: (f) =>
          report.add(section.title, {
            ...f,
            id: `${section.name}.${f.id}`,
            peer: f.peer === undefined ? undefined : `${section.name}.${f.peer}`,
            floor: f.floor === undefined ? undefined : `${section.name}.${f.floor}`,
          }),
        id: (local) => `${section.name}.${local}`,
        log: (m) => log(m),
        pick: (quick, full) => (opts.quick ? quick : full),
        sizes: opts.sizes,
      };
      try {
        await section.run(ctx);
      } catch (e) {
        const error = e instanceof Error ? (e.stack ?? e.message) : String(e);
        errors.push({ section: section.name, error });
        log(`section ${section.name} failed: ${error}`);
      }
      log(`   ${section.name} took ${((performance.now() - s0) / 1000).toFixed(1)}s`);
    }
  } finally {
    await stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  report.finalize();
  const elapsed = (performance.now() - t0) / 1000;
  const failed = report.failedGoals();
  const table = report.markdown();
  const busy = loads.filter((l) => isBusy(l.load1, l.otherCpu, cores));
  const lines = [
    `## pg-edge-session benchmark (${opts.quick ? 'quick' : 'full'}, ${started.toISOString()})`,
    '',
    `PostgreSQL ${database.version} (${database.source}), Node ${process.version}, ${cores} CPUs; median of ${reps} repetitions; ${elapsed.toFixed(0)} s. Warm-up: windows of ${opts.quick ? 500 : 1000} ms repeated until one is no more than ${warmupPolicy.tolerance * 100}% faster than the one before (at most ${warmupPolicy.maxWindows}).`,
    '',
    `Before each section, load average (1 min, includes the previous section's own work) / other work's share of the CPUs in the second before it: ${loads.map((l) => `${l.section} ${l.load1.toFixed(2)}${l.otherCpu === undefined ? '' : ` / ${(l.otherCpu * 100).toFixed(0)}%`}`).join(', ')}.`,
    busy.length > 0
      ? `⚠️ BUSY MACHINE: other work used more than ${BUSY_SHARE * 100}% of the CPUs before ${busy.map((l) => l.section).join(', ')}, so absolute figures (and latency tails) of those sections are not trustworthy; ratios measured in the same section share the disturbance.`
      : `No other work above ${BUSY_SHARE * 100}% of the CPUs before any section.`,
    '',
    table,
    '',
    '### Goals',
    '',
    ...report.goalLines(),
    '',
  ];
  const notes = report.notes();
  if (notes.length > 0) lines.push('Notes:', ...notes, '');
  if (failed.length > 0) {
    const which = (f: (typeof failed)[number]) =>
      (f.goals ?? [])
        .filter((g) => g.pass === false)
        .map((g) => g.text)
        .join(', ');
    lines.push(`Goals failed: ${failed.map((f) => `${f.label} (${which(f)})`).join('; ')}`, '');
  }
  for (const e of errors) lines.push(`Section ${e.section} failed: ${e.error.split('\n')[0]}`);
  console.log(lines.join('\n'));

  const json = {
    startedAt: started.toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    sections: sections.map((s) => s.name),
    repetitions: reps,
    elapsedSeconds: Math.round(elapsed * 10) / 10,
    environment: { node: process.version, cpus: cores, postgres: database.version, database: database.source },
    loadAverages: loads,
    busy: busy.length > 0,
    warmup: { ...warmupPolicy, windows: Object.fromEntries(warmupWindows) },
    goals: report.goalLines(),
    figures: report.figures,
    failedGoals: failed.map((f) => f.id),
    errors,
    markdown: table,
  };
  const dir = join(import.meta.dirname, 'results');
  writeJsonAtomic(join(dir, 'history', `${started.toISOString().replace(/[:.]/g, '-')}${opts.quick ? '-quick' : ''}.json`), json);
  writeJsonAtomic(join(dir, 'latest.json'), json);
  return errors.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
