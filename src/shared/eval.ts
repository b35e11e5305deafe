// evals.jsonl (run directory format 1, optional): one EvalRecord per line, appended by
// `steelscope eval` and by trainers running `eval_tasks` at each checkpoint. One record per
// subject of a task, and one with subject MACRO_SUBJECT holding the macro average over subjects.
import * as v from 'valibot';
import { nonNegativeInt, num, openObj, str, type Output } from './schema';

export const EVALS_FILE = 'evals.jsonl';
export const MACRO_SUBJECT = '_average';

export const EvalRecordSchema = openObj({
  step: nonNegativeInt,
  /** Unix ms, as every record of the run format. */
  t: num,
  /** poetry-mc, ceval, cmmlu, ppl:<file>, … */
  task: str,
  subject: str,
  /** Questions scored (tokens for a ppl task). */
  n: nonNegativeInt,
  /** Accuracy in [0, 1] of a multiple-choice task. */
  acc: v.optional(num),
  /** Accuracy with each choice's log-likelihood divided by its length in bytes (choices of unequal length). */
  acc_norm: v.optional(num),
  /** Standard error of acc (the sample standard error of the mean; macro: of the mean of subjects). */
  stderr: v.optional(num),
  /** Perplexity of a ppl task, exp(mean loss). */
  ppl: v.optional(num),
});
export type EvalRecord = Output<typeof EvalRecordSchema>;

/** The check every reader of evals.jsonl applies to a line (the tracker, `steelscope follow`). */
export function isEvalRecord(value: unknown): value is EvalRecord {
  return v.is(EvalRecordSchema, value);
}

/** The macro average of subject records: mean acc, and the stderr of that mean (subjects independent). */
export function macroAverage(subjects: readonly EvalRecord[]): Pick<EvalRecord, 'acc' | 'stderr' | 'n'> {
  const accs = subjects.map((s) => s.acc ?? NaN);
  const acc = accs.reduce((a, b) => a + b, 0) / accs.length;
  const n = subjects.reduce((a, s) => a + s.n, 0);
  // Unknown when a subject's is (a subject of one question).
  if (subjects.some((s) => s.stderr === undefined)) return { acc, n };
  const stderr = Math.sqrt(subjects.reduce((a, s) => a + (s.stderr ?? 0) ** 2, 0)) / subjects.length;
  return { acc, stderr, n };
}
