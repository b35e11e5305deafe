// What `train` and `resume` print when the loop ends, read back from the run folder (the same
// files the extension reads): the loss curve, the final losses, the newest samples, and how to
// watch the run in VS Code.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseJsonl } from '../shared/jsonl';
import { decodeMetric, isMetricRecord, isSampleRecord, type MetricRecord, type SampleRecord } from '../shared/run';
import { brailleChart, type Point } from './plot';

export interface SummaryOptions {
  /** Terminal width; the chart fits inside it. */
  columns: number;
  /** Where the user runs the command (the repository, for `npm start`). */
  cwd: string;
}

/** Train records' mean over this many last steps is the "final train loss" (one batch is noisy). */
const FINAL_WINDOW = 20;

export function runSummary(runDir: string, opts: SummaryOptions): string[] {
  const metrics = latestPerStep(readJsonl(join(runDir, 'metrics.jsonl'), isMetricRecord));
  const train = series(metrics, 'train');
  const evals = series(metrics, 'eval');
  const lines: string[] = [];
  if (train.length > 0) {
    const width = Math.max(20, Math.min(72, opts.columns - 10));
    lines.push('', `loss over ${train.length.toLocaleString('en-US')} steps (⣿ train, mean per column; ● eval)`);
    lines.push(...brailleChart(train, { width, height: 10, marks: evals }));
    lines.push(finalLosses(train, evals));
  }
  lines.push(...lastSamples(readJsonl(join(runDir, 'samples.jsonl'), isSampleRecord)));
  lines.push(...nextSteps(resolve(runDir), opts.cwd));
  return lines;
}

function readJsonl<T>(path: string, accept: (value: unknown) => value is T): T[] {
  return existsSync(path) ? parseJsonl(readFileSync(path), accept).records : [];
}

/** After a resume a later record of a step supersedes the earlier one (README, run directory). */
function latestPerStep(records: MetricRecord[]): MetricRecord[] {
  const byKey = new Map<string, MetricRecord>();
  for (const r of records) byKey.set(`${r.kind ?? ''}:${r.step}`, r);
  return [...byKey.values()].sort((a, b) => a.step - b.step);
}

function series(records: MetricRecord[], kind: string): Point[] {
  return records.flatMap((r) => {
    const loss = r.kind === kind ? decodeMetric(r.loss) : undefined;
    return loss === undefined ? [] : [[r.step, loss] as const];
  });
}

function finalLosses(train: Point[], evals: Point[]): string {
  const tail = train.slice(-FINAL_WINDOW).filter(([, y]) => Number.isFinite(y));
  const mean = tail.reduce((sum, [, y]) => sum + y, 0) / Math.max(1, tail.length);
  const trainText = `train loss ${mean.toFixed(4)} (mean of the last ${tail.length} steps)`;
  const lastEval = evals.at(-1);
  return lastEval === undefined
    ? `final: ${trainText}`
    : `final: ${trainText}, eval loss ${lastEval[1].toFixed(4)} at step ${lastEval[0]}`;
}

function lastSamples(samples: SampleRecord[]): string[] {
  const last = samples.at(-1)?.step;
  if (last === undefined) return [];
  const oneLine = (text: string) => text.replace(/\s*\n\s*/g, ' / ');
  const shown = samples
    .filter((s) => s.step === last)
    .map((s) => `  ${oneLine(s.prompt.trim())} → ${oneLine(s.text).slice(0, 80)}`);
  return ['', `samples at step ${last}:`, ...shown];
}

/** How to open the run in VS Code: from this repository by packaging the extension, else by folder. */
function nextSteps(runDir: string, cwd: string): string[] {
  const repository = isThisRepository(cwd);
  const shown = relative(cwd, runDir).startsWith('..') ? runDir : relative(cwd, runDir) || '.';
  const lines = ['', 'next: watch this run in VS Code'];
  if (repository) {
    lines.push('  npm run package                              # builds steelscope.vsix');
    lines.push('  code --install-extension steelscope.vsix');
  }
  // The Runs view lists <first workspace folder>/runs/ by default (setting steelscope.runsRoot).
  if (dirname(runDir) === resolve(cwd, 'runs')) {
    lines.push(`  code .    # then Steelscope (activity bar) › Runs › ${basename(runDir)} › Open Dashboard`);
  } else {
    lines.push(`  in VS Code: Steelscope: Open Run Folder… → ${runDir}`);
  }
  lines.push(`  ${repository ? 'node dist/cli.js' : 'steelscope'} sample ${shown} --prompt "春"   # or sample it here`);
  return lines;
}

function isThisRepository(dir: string): boolean {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'steelscope';
  } catch {
    return false;
  }
}
