// The Evals section's data, pure (no DOM, no chart.js; tested in test/unit/dashboard-evals.test.ts):
// the accuracy lines on the view's x axis, the chart's x-range, the table's step choices and rows.
import { interval95, latestScores, MACRO_SUBJECT } from '../../src/shared/eval';
import type { EvalItem } from '../../src/shared/protocol';
import type { RunModel } from './data';
import type { IntervalPt } from './plugins';
import { runColor, type Theme } from './theme';

export interface EvalPt extends IntervalPt {
  n: number;
  step: number;
}

export interface EvalLine {
  run: RunModel;
  task: string;
  color: string;
  points: EvalPt[];
}

export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/**
 * The macro-average accuracy lines of the runs shown: one per run and task, ascending by step, each
 * point at its record's place on the view's axis (a record with none there is left out; on a log
 * axis, one at or below 0 too, as the other charts leave step 0 out).
 */
export function evalLines(runs: readonly RunModel[], theme: Theme, logX = false): EvalLine[] {
  const lines: EvalLine[] = [];
  for (const run of runs) {
    const byTask = new Map<string, EvalPt[]>();
    for (const r of latestScores(run.evals)) {
      if (r.subject !== MACRO_SUBJECT || r.acc === null || r.x === null || (logX && r.x <= 0)) continue;
      const [lo, hi] = interval95(r.acc, r.stderr) ?? [undefined, undefined];
      const points = byTask.get(r.task) ?? [];
      points.push({ x: r.x, y: r.acc, lo, hi, n: r.n, step: r.step });
      byTask.set(r.task, points);
    }
    for (const [task, points] of byTask) lines.push({ run, task, color: runColor(theme, run.header.color), points });
  }
  return lines;
}

/** The x-range the Evals chart spans: the other charts' (so it lines up with the loss), widened to its points. */
export function evalsExtent(lines: readonly EvalLine[], charts: [number, number] | null): [number, number] | null {
  const xs = lines.flatMap((l) => l.points.map((p) => p.x));
  if (charts) xs.push(...charts);
  if (xs.length === 0) return null;
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo < hi ? [lo, hi] : null; // one x alone: chart.js pads around it
}

/** Every evaluated step of the runs shown, newest first: the table's step choices. */
export function evaluatedSteps(runs: readonly RunModel[]): number[] {
  return [...new Set(runs.flatMap((run) => run.evals.map((r) => r.step)))].sort((a, b) => b - a);
}

/**
 * Per run and task, the subjects of its newest evaluation at or before `step` (the newest of all when
 * null), the average last: picking a step shows where every run stood then, also a run whose checkpoints
 * fell on other steps.
 */
export function subjectRows(runs: readonly RunModel[], step: number | null = null): Record<string, string>[] {
  return runs.flatMap((run) => {
    const latest = latestScores(run.evals).filter((r) => step === null || r.step <= step);
    const newest = new Map<string, number>();
    for (const r of latest) newest.set(r.task, Math.max(newest.get(r.task) ?? -Infinity, r.step));
    const rows = latest.filter((r) => r.step === newest.get(r.task));
    const order = (r: EvalItem) => (r.subject === MACRO_SUBJECT ? 1 : 0);
    rows.sort((a, b) => a.task.localeCompare(b.task) || order(a) - order(b) || a.subject.localeCompare(b.subject));
    return rows.map((r) => {
      const ci = r.acc === null ? undefined : interval95(r.acc, r.stderr);
      return {
        run: run.header.name,
        task: r.task,
        subject: r.subject === MACRO_SUBJECT ? '(average)' : r.subject,
        step: r.step.toLocaleString('en-US'),
        n: r.n.toLocaleString('en-US'),
        acc: r.acc !== null ? pct(r.acc) : r.ppl !== null ? `ppl ${r.ppl.toFixed(2)}` : '—',
        interval: ci ? `${pct(ci[0])} – ${pct(ci[1])}` : '—',
        accNorm: r.accNorm !== null ? pct(r.accNorm) : '—',
      };
    });
  });
}
