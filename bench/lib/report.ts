// Figures, their ratios to a peer and to a floor measured in the same run, goals, and the two outputs:
// a markdown table on stdout and JSON under bench/results/.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fmtMs, fmtOps, type Sample, type Summary } from './measure.ts';

export type Comparator = '>=' | '<=' | '<' | '>' | '==';

/**
 * What a goal checks: the figure's ops/s, its ratio to the peer or to the floor (as computed for the
 * figure), or its `value` (counts, bytes, percentages).
 */
export interface GoalSpec {
  metric: 'ops' | 'peer' | 'floor' | 'value';
  cmp: Comparator;
  target: number;
}

export interface FigureInput {
  /** Unique in the run, `section.name`. */
  id: string;
  label: string;
  summary?: Summary;
  /** For figures that are not a rate (statements per op, bytes, %, ms). */
  value?: number;
  unit?: string;
  /** Figure id of the competitor; ratio = this ops/s ÷ peer ops/s (higher is better). */
  peer?: string;
  /** Figure id of the floor; ratio by ops/s (this ÷ floor) or by p50 latency (this ÷ floor). */
  floor?: string;
  floorBy?: 'ops' | 'p50';
  /** One goal or several (all must hold). */
  goal?: GoalSpec | GoalSpec[];
  note?: string;
  /** A floor or peer measured only to be compared against (shown, but in italics). */
  reference?: boolean;
}

export interface Ratio {
  id: string;
  label: string;
  ratio: number;
  by: 'ops' | 'p50';
}

export interface Figure {
  section: string;
  id: string;
  label: string;
  reference: boolean;
  ops?: number;
  p50Ms?: number;
  p99Ms?: number;
  value?: number;
  unit?: string;
  peer?: Ratio;
  floor?: Ratio;
  goals?: { text: string; pass: boolean | null; actual: string }[];
  note?: string;
  samples?: Sample[];
}

export class Report {
  readonly figures: Figure[] = [];
  #inputs = new Map<string, FigureInput & { section: string }>();

  add(section: string, f: FigureInput): void {
    if (this.#inputs.has(f.id)) throw new Error(`duplicate figure id ${f.id}`);
    this.#inputs.set(f.id, { ...f, section });
    const s = f.summary;
    this.figures.push({
      section,
      id: f.id,
      label: f.label,
      reference: f.reference === true,
      ops: s?.ops,
      p50Ms: s?.p50,
      p99Ms: s?.p99,
      value: f.value,
      unit: f.unit,
      note: f.note,
      samples: s?.samples,
    });
  }

  /** Resolves peer/floor references into ratios and evaluates goals. Call once, after every section. */
  finalize(): void {
    const byId = new Map(this.figures.map((f) => [f.id, f]));
    for (const fig of this.figures) {
      const input = this.#inputs.get(fig.id);
      if (input === undefined) continue;
      if (input.peer !== undefined) {
        const p = byId.get(input.peer);
        if (p?.ops !== undefined && fig.ops !== undefined) fig.peer = { id: p.id, label: p.label, ratio: fig.ops / p.ops, by: 'ops' };
      }
      if (input.floor !== undefined) {
        const p = byId.get(input.floor);
        const by = input.floorBy ?? 'ops';
        if (p !== undefined) {
          const ratio =
            by === 'ops' ? (fig.ops ?? Number.NaN) / (p.ops ?? Number.NaN) : (fig.p50Ms ?? Number.NaN) / (p.p50Ms ?? Number.NaN);
          fig.floor = { id: p.id, label: p.label, ratio, by };
        }
      }
      if (input.goal !== undefined) fig.goals = (Array.isArray(input.goal) ? input.goal : [input.goal]).map((g) => evaluate(g, fig));
    }
  }

  failedGoals(): Figure[] {
    return this.figures.filter((f) => f.goals?.some((g) => g.pass === false));
  }

  markdown(): string {
    const rows: string[] = [
      '| figure | ops/s | p50 | p99 | vs peer | vs floor | value | goal |',
      '| --- | ---: | ---: | ---: | --- | --- | ---: | --- |',
    ];
    let section = '';
    for (const f of this.figures) {
      if (f.section !== section) {
        section = f.section;
        rows.push(`| **${section}** | | | | | | | |`);
      }
      const label = f.reference ? `_${f.label}_` : f.label;
      const ratio = (r: Ratio | undefined) => (r === undefined ? '' : `${fmtRatio(r.ratio)}${r.by === 'p50' ? ' (p50)' : ''} ${r.label}`);
      const value = f.value === undefined ? '' : `${fmtValue(f.value)}${f.unit ? ` ${f.unit}` : ''}`;
      const goal = (f.goals ?? []).map((g) => `${g.text} ${g.pass === null ? '?' : g.pass ? '✅' : '❌'}`).join('; ');
      rows.push(
        `| ${esc(label)} | ${f.ops === undefined ? '' : fmtOps(f.ops)} | ${f.p50Ms === undefined ? '' : fmtMs(f.p50Ms)} | ${f.p99Ms === undefined ? '' : fmtMs(f.p99Ms)} | ${esc(ratio(f.peer))} | ${esc(ratio(f.floor))} | ${esc(value)} | ${esc(goal)} |`,
      );
    }
    return rows.join('\n');
  }

  /**
   * Every goal on its own line, ✅/❌ (or ❔ when the figure could not be measured), with the figure's
   * actual value, in the order the figures were added.
   */
  goalLines(): string[] {
    const out: string[] = [];
    for (const f of this.figures) {
      for (const g of f.goals ?? []) {
        const mark = g.pass === null ? '❔' : g.pass ? '✅' : '❌';
        out.push(`${mark} ${f.section}: ${f.label}: ${g.text} (${g.actual})`);
      }
    }
    return out;
  }

  notes(): string[] {
    return this.figures.filter((f) => f.note).map((f) => `- ${f.label}: ${f.note}`);
  }
}

function evaluate(g: GoalSpec, f: Figure): { text: string; pass: boolean | null; actual: string } {
  const actual = g.metric === 'ops' ? f.ops : g.metric === 'peer' ? f.peer?.ratio : g.metric === 'floor' ? f.floor?.ratio : f.value;
  const target =
    g.metric === 'ops'
      ? `${fmtOps(g.target)} ops/s`
      : g.metric === 'value'
        ? `${fmtValue(g.target)}${f.unit ? ` ${f.unit}` : ''}`
        : `${g.target}×`;
  const what = g.metric === 'peer' ? 'peer ' : g.metric === 'floor' ? (f.floor?.by === 'p50' ? 'floor (p50) ' : 'floor ') : '';
  const text = `${what}${g.cmp.replace('>=', '≥').replace('<=', '≤')} ${target}`;
  if (actual === undefined || !Number.isFinite(actual)) return { text, pass: null, actual: 'not measured' };
  const shown =
    g.metric === 'ops'
      ? `${fmtOps(actual)} ops/s`
      : g.metric === 'value'
        ? `${fmtValue(actual)}${f.unit ? ` ${f.unit}` : ''}`
        : `${fmtRatio(actual)}${g.metric === 'peer' ? ` ${f.peer?.label}` : ` ${f.floor?.label}`}`;
  const pass =
    g.cmp === '>='
      ? actual >= g.target
      : g.cmp === '<='
        ? actual <= g.target
        : g.cmp === '<'
          ? actual < g.target
          : g.cmp === '>'
            ? actual > g.target
            : actual === g.target;
  return { text, pass, actual: shown };
}

function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return '—';
  return r >= 100 ? `${r.toFixed(0)}×` : r >= 10 ? `${r.toFixed(1)}×` : `${r.toFixed(2)}×`;
}

function fmtValue(v: number): string {
  if (!Number.isFinite(v)) return '—';
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2);
}

function esc(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** Writes `data` to `file` atomically (a temporary file, then rename). */
export function writeJsonAtomic(file: string, data: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = join(dirname(file), `${process.pid}.json.tmp`);
  writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`);
  renameSync(tmp, file);
}
