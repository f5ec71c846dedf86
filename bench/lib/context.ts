import type pg from 'pg';
import type { FigureInput, Report } from './report.ts';

/** What a section gets from the harness. */
export interface BenchContext {
  /** Connection string of the run's one PostgreSQL. */
  url: string;
  quick: boolean;
  /** Measured repetitions per figure (the table shows their median). */
  reps: number;
  /** Length of one repetition of a timed figure, and of its warm-up. */
  repMs: number;
  warmupMs: number;
  /** A small pool for setup and cleanup SQL (never measured). */
  admin: pg.Pool;
  report: Report;
  /** Adds a figure to this section (ids are prefixed with the section name). */
  add(f: FigureInput): void;
  /** Figure id as `add` stores it, for peer/floor references. */
  id(local: string): string;
  log(message: string): void;
  /** The quick-mode or the full-mode value. */
  pick<T>(quick: T, full: T): T;
  /** Table sizes given with `--sizes=` (the scale section's), else undefined. */
  sizes: number[] | undefined;
}

/** A benchmark section: one module under bench/sections/, registered in bench/sections/index.ts. */
export interface Section {
  /** What `--only=` takes. */
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<void>;
}
