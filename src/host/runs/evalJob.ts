// `steelscope eval` run for Evaluate Checkpoint… on the checkpoint's own target (this machine or
// its SSH host), without vscode: its progress lines (src/shared/eval.ts evalProgressLine) reported
// as they come, cancellable, and a failure turned into the one line the CLI said about it. The CLI
// appends the records to the run's evals.jsonl itself; the tracker reads them from there.
import { createInterface } from 'node:readline';
import { parseEvalProgress, type EvalProgress } from '../../shared/eval';
import type { RunTarget } from './types';

export interface EvalRequest {
  /** The checkpoint folder, as the target names it. */
  checkpoint: string;
  /** poetry-mc, a C-Eval/CMMLU CSV or folder, or ppl:<file> (a path on the target). */
  task: string;
  shots: number;
  /** Questions per subject at most. */
  limit?: number;
}

export function evalArgs(r: EvalRequest): string[] {
  const args = ['eval', r.checkpoint, '--task', r.task, '--shots', String(r.shots)];
  return r.limit === undefined ? args : [...args, '--limit', String(r.limit)];
}

/** The evaluation was cancelled: it was stopped before writing anything. */
export class EvalCancelled extends Error {
  constructor() {
    super('The evaluation was cancelled.');
    this.name = 'EvalCancelled';
  }
}

/** What the CLI said went wrong: its last `steelscope: …` line (the first line of a stack), else its last line. */
export function failureLine(stderr: readonly string[], code: number | null, signal?: string | null): string {
  const said = [...stderr].reverse().find((l) => l.startsWith('steelscope: '));
  if (said) return said.slice('steelscope: '.length);
  const last = [...stderr].reverse().find((l) => l.trim() !== '');
  const how = code !== null ? `with code ${code}` : `on ${signal ?? 'a lost connection'}`;
  return last ? `${last.trim()} (eval exited ${how})` : `steelscope eval exited ${how} without saying why.`;
}

/**
 * The result in a sentence, from the CLI's table (src/cli/commands/eval.ts evalTable: columns two
 * spaces apart): each task's average, "poetry-mc: accuracy 0.2325 ± 0.0212, 95% [0.191, 0.274] (n 400)".
 */
export function resultLine(table: readonly string[]): string {
  const averages = table
    .map((line) => line.trim().split(/\s{2,}/))
    .filter((cols) => cols[1] === '(average)')
    .map(
      ([task, , n, score, interval]) =>
        `${task}: ${score.startsWith('ppl') ? score : `accuracy ${score}`}${interval ? `, 95% ${interval}` : ''} (n ${n})`,
    );
  return averages.length ? averages.join(' · ') : 'evaluated';
}

const KEEP_LINES = 40;

/**
 * Runs the evaluation; resolves with the CLI's result table (stdout lines) once it has written the
 * records, rejects with EvalCancelled when `signal` aborts it, or with the CLI's own reason.
 */
export async function runEval(
  target: Pick<RunTarget, 'runCli'>,
  request: EvalRequest,
  opts: { onProgress?: (p: EvalProgress) => void; signal?: AbortSignal } = {},
): Promise<string[]> {
  if (opts.signal?.aborted) throw new EvalCancelled();
  const proc = await target.runCli(evalArgs(request), 'the eval process');
  const stop = () => proc.stop();
  opts.signal?.addEventListener('abort', stop, { once: true });
  if (opts.signal?.aborted) stop();
  const said: string[] = [];
  const table: string[] = [];
  const stderrDone = new Promise<void>((done) =>
    createInterface({ input: proc.stderr, crlfDelay: Infinity })
      .on('line', (line) => {
        const progress = parseEvalProgress(line);
        if (progress) return opts.onProgress?.(progress);
        said.push(line);
        if (said.length > KEEP_LINES) said.shift();
      })
      .once('close', done),
  );
  const stdoutDone = new Promise<void>((done) =>
    createInterface({ input: proc.stdout, crlfDelay: Infinity })
      .on('line', (line) => table.push(line))
      .once('close', done),
  );
  try {
    const exit = await proc.exit;
    await Promise.all([stderrDone, stdoutDone]);
    if (exit.code === 0) return table; // done (and written), even if a cancel came too late
    if (opts.signal?.aborted) throw new EvalCancelled();
    throw new Error(exit.error ?? failureLine(said, exit.code, exit.signal));
  } finally {
    opts.signal?.removeEventListener('abort', stop);
  }
}
