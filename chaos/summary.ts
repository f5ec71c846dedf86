// The run's summary: operations by kind (ok / failed by code / timed out), faults by kind, violations, the
// checker's coverage counters, and throughput while a fault is in effect versus without.
import type { CheckResult, CheckStats } from './check.ts';
import type { History, Violation } from './types.ts';

export interface Summary {
  seed?: number;
  loadSeconds: number;
  operations: {
    total: number;
    ok: number;
    failed: number;
    timeouts: number;
    byKind: Record<string, { ok: number; failed: Record<string, number>; timeouts: number }>;
    finalReads: number;
  };
  faults: { total: number; byKind: Record<string, { count: number; failed: number; meanMs: number }> };
  /** Per process: how it keeps its cache fresh, its clock skew, and its load operations (HTTP ones apart). */
  processes: { proc: number; mode: string; skewMs: number; ops: number; http: number }[];
  throughput: {
    /** Successful load operations per second while a fault was in effect (its window + 1 s of recovery). */
    duringFaults: number;
    withoutFaults: number;
    faultSeconds: number;
    calmSeconds: number;
  };
  feed: { deliveries: number; resets: number };
  processEvents: { process: string; kind: string; detail: string }[];
  violations: { total: number; byKind: Record<string, number>; details: Violation[] };
  coverage: CheckStats;
  apps: unknown[];
}

const RECOVERY_MS = 1000;

const clip = (t: string, n: number) => (t.length > n ? `${t.slice(0, n)}…` : t);

export function summarize(h: History, check: CheckResult, apps: unknown[] = []): Summary {
  const byKind: Summary['operations']['byKind'] = {};
  let ok = 0;
  let failed = 0;
  let timeouts = 0;
  let finalReads = 0;
  for (const op of h.ops) {
    if (op.phase === 'final') {
      finalReads++;
      continue;
    }
    const k = byKind[op.kind] ?? { ok: 0, failed: {}, timeouts: 0 };
    byKind[op.kind] = k;
    if (op.status === 'ok') {
      k.ok++;
      ok++;
    } else if (op.status === 'timeout') {
      k.timeouts++;
      timeouts++;
    } else {
      const code = op.code ?? 'UNTYPED';
      k.failed[code] = (k.failed[code] ?? 0) + 1;
      failed++;
    }
  }
  const faultsByKind: Summary['faults']['byKind'] = {};
  for (const f of h.faults) {
    const k = faultsByKind[f.kind] ?? { count: 0, failed: 0, meanMs: 0 };
    faultsByKind[f.kind] = k;
    k.meanMs = (k.meanMs * k.count + (f.end - f.start)) / (k.count + 1);
    k.count++;
    if (!f.ok) k.failed++;
  }
  for (const k of Object.values(faultsByKind)) k.meanMs = Math.round(k.meanMs);

  // Fault windows, merged, clipped to the load window.
  const windows = h.faults
    .map((f) => [Math.max(h.loadStart, f.start), Math.min(h.loadEnd, f.end + RECOVERY_MS)] as [number, number])
    .filter(([a, b]) => b > a)
    .sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const w of windows) {
    const last = merged[merged.length - 1];
    if (last && w[0] <= last[1]) last[1] = Math.max(last[1], w[1]);
    else merged.push([...w]);
  }
  const faultMs = merged.reduce((s, [a, b]) => s + (b - a), 0);
  const calmMs = Math.max(0, h.loadEnd - h.loadStart - faultMs);
  const inFault = (t: number) => merged.some(([a, b]) => t >= a && t < b);
  let okFault = 0;
  let okCalm = 0;
  for (const op of h.ops) {
    if (op.phase !== 'load' || op.status !== 'ok' || op.end < h.loadStart || op.end > h.loadEnd) continue;
    if (inFault(op.end)) okFault++;
    else okCalm++;
  }
  const processes: Summary['processes'] = [];
  const modes = h.config.procMode ?? [];
  for (let p = 0; p < Math.max(modes.length, h.config.procWorker.length); p++)
    processes.push({ proc: p, mode: modes[p] ?? '?', skewMs: h.config.clockSkewMs?.[p] ?? 0, ops: 0, http: 0 });
  for (const op of h.ops) {
    const p = processes[op.proc];
    if (p === undefined || op.phase !== 'load') continue;
    p.ops++;
    if (op.via === 'http') p.http++;
  }
  const byViolation: Record<string, number> = { ...check.counts };
  return {
    loadSeconds: +((h.loadEnd - h.loadStart) / 1000).toFixed(1),
    operations: { total: ok + failed + timeouts, ok, failed, timeouts, byKind, finalReads },
    faults: { total: h.faults.length, byKind: faultsByKind },
    processes,
    throughput: {
      duringFaults: faultMs > 0 ? Math.round(okFault / (faultMs / 1000)) : 0,
      withoutFaults: calmMs > 0 ? Math.round(okCalm / (calmMs / 1000)) : 0,
      faultSeconds: +(faultMs / 1000).toFixed(1),
      calmSeconds: +(calmMs / 1000).toFixed(1),
    },
    feed: { deliveries: h.deliveries.length, resets: h.deliveries.filter((d) => d.reset).length },
    processEvents: h.processEvents.map((e) => ({ process: e.process, kind: e.kind, detail: e.detail.slice(0, 300) })),
    violations: { total: Object.values(byViolation).reduce((a, b) => a + b, 0), byKind: byViolation, details: check.violations },
    coverage: check.stats,
    apps,
  };
}

export function formatSummary(s: Summary): string {
  const out: string[] = [];
  out.push(`chaos run${s.seed !== undefined ? ` (seed ${s.seed})` : ''}: ${s.loadSeconds} s of load`);
  out.push(
    `operations: ${s.operations.total} (ok ${s.operations.ok}, failed ${s.operations.failed}, timed out ${s.operations.timeouts}); final verification reads: ${s.operations.finalReads}`,
  );
  for (const [kind, k] of Object.entries(s.operations.byKind).sort()) {
    const failed = Object.entries(k.failed)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ');
    out.push(
      `  ${kind.padEnd(10)} ok ${String(k.ok).padStart(7)}   failed ${failed || '0'}${k.timeouts ? `   timeouts ${k.timeouts}` : ''}`,
    );
  }
  out.push(
    `processes: ${s.processes.map((p) => `${p.proc} ${p.mode} (clock ${p.skewMs >= 0 ? '+' : ''}${(p.skewMs / 1000).toFixed(0)} s) ${p.ops} ops${p.http ? ` (${p.http} via HTTP)` : ''}`).join(', ')}`,
  );
  out.push(`faults: ${s.faults.total}`);
  for (const [kind, f] of Object.entries(s.faults.byKind).sort()) {
    out.push(`  ${kind.padEnd(19)} ${f.count}x, mean ${f.meanMs} ms${f.failed ? `, ${f.failed} failed to inject/recover` : ''}`);
  }
  out.push(
    `throughput (ok ops/s): ${s.throughput.duringFaults} during faults (${s.throughput.faultSeconds} s incl. 1 s recovery each) vs ${s.throughput.withoutFaults} without (${s.throughput.calmSeconds} s)`,
  );
  out.push(`feed observer: ${s.feed.deliveries} deliveries, ${s.feed.resets} resets`);
  const c = s.coverage;
  out.push(
    `checked: ${c.readsFound} reads that returned a session (${c.readsJudgedForVersions} late enough to be judged for freshness), ${c.readsJudgedAfterRevocation} reads of revoked, rotated-away or expired tokens past the staleness bound (${c.readsJudgedAfterRevocationInLoad} during the load), ${c.casUpdatesChecked} compare-and-set writes, ${c.sessionsVerifiedAlive} sessions verified present (${c.sessionsExcused} excused by unknown outcomes), ${c.lastAccessSeries} last_accessed series, ${c.touchSessionsChecked} sessions' touches (${c.touchesAtRisk} touches at risk from a worker SIGKILL), ${c.changesChecked} changes traced through the feed`,
  );
  out.push(
    `modes of issue 9: ${c.writesThroughDeadTokens} writes, rotations or deletes through a token already rotated away, revoked or expired (${c.writesThroughDeadCookies} of them stale cookies over HTTP), ${c.readsJudgedIdle} reads of short-idle sessions past their idle timeout, ${c.touchesInjected} injected touches (${c.touchesMustDrop} of them for sessions idle-expired when they arrived)`,
  );
  if (s.processEvents.length > 0) {
    out.push('process events:');
    for (const e of s.processEvents) out.push(`  ${e.process}: ${e.kind}: ${clip(e.detail, 300)}`);
  }
  out.push(`violations: ${s.violations.total}`);
  for (const [k, n] of Object.entries(s.violations.byKind)) out.push(`  ${k}: ${n}`);
  for (const v of s.violations.details.slice(0, 20)) {
    const ev = v.evidence === undefined ? '' : JSON.stringify(v.evidence);
    out.push(`  - [${v.kind}] ${clip(v.message, 400)}${ev ? `\n      ${clip(ev, 800)}` : ''}`);
  }
  if (s.violations.details.length > 20) out.push(`  … ${s.violations.details.length - 20} more (see --json)`);
  return out.join('\n');
}
