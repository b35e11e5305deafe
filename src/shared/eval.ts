// evals.jsonl (run directory format 1, optional): one EvalRecord per line, appended by
// `steelscope eval` and by trainers running `eval_tasks` at each checkpoint. One record per
// subject of a task, and one with subject MACRO_SUBJECT holding the macro average over subjects.
import * as v from 'valibot';
import { intRange, nonNegativeInt, num, obj, oneOf, openObj, str, type Output } from './schema';

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
  /**
   * lm-evaluation-harness's acc_norm: each choice's log-likelihood divided by the length of its text
   * (characters, as the harness's `len(choice)`), then the largest. Scored over letters (C-Eval/CMMLU's
   * `letters` format) every choice has length 1 and acc_norm equals acc; the harness reports both.
   */
  acc_norm: v.optional(num),
  /** Standard error of acc (the sample standard error of the mean; macro: of the mean of subjects). */
  stderr: v.optional(num),
  /** Standard error of acc_norm, computed as stderr is. */
  acc_norm_stderr: v.optional(num),
  /** Few-shot examples in each prompt (absent in records written before it was recorded). */
  shots: v.optional(nonNegativeInt),
  /**
   * How choices were scored: `letters` (the letters A-D after the listed options, as the harness's
   * ceval/cmmlu) or `cloze` (each choice's own text after the question). Absent: letters.
   */
  format: v.optional(v.picklist(['letters', 'cloze'], 'expected letters or cloze')),
  /** Perplexity of a ppl task, exp(mean loss). */
  ppl: v.optional(num),
});
export type EvalRecord = Output<typeof EvalRecordSchema>;

/** The check every reader of evals.jsonl applies to a line (the tracker, `steelscope follow`). */
export function isEvalRecord(value: unknown): value is EvalRecord {
  return v.is(EvalRecordSchema, value);
}

/** Mean of one metric over subjects, and the stderr of that mean (subjects independent; unknown when a subject's is). */
function meanOver(
  values: readonly number[],
  stderrs: readonly (number | undefined)[],
): { mean: number; stderr?: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (stderrs.some((s) => s === undefined)) return { mean }; // a subject of one question
  const stderr = Math.sqrt(stderrs.reduce<number>((a, s) => a + (s ?? 0) ** 2, 0)) / stderrs.length;
  return { mean, stderr };
}

/** The macro average of subject records: mean acc (and acc_norm when scored), each with the stderr of the mean. */
export function macroAverage(
  subjects: readonly EvalRecord[],
): Pick<EvalRecord, 'acc' | 'stderr' | 'acc_norm' | 'acc_norm_stderr' | 'n'> {
  const n = subjects.reduce((a, s) => a + s.n, 0);
  const acc = meanOver(
    subjects.map((s) => s.acc ?? NaN),
    subjects.map((s) => s.stderr),
  );
  const out: Pick<EvalRecord, 'acc' | 'stderr' | 'acc_norm' | 'acc_norm_stderr' | 'n'> = { acc: acc.mean, n };
  if (acc.stderr !== undefined) out.stderr = acc.stderr;
  if (subjects.every((s) => s.acc_norm !== undefined)) {
    const norm = meanOver(
      subjects.map((s) => s.acc_norm ?? NaN),
      subjects.map((s) => s.acc_norm_stderr),
    );
    out.acc_norm = norm.mean;
    if (norm.stderr !== undefined) out.acc_norm_stderr = norm.stderr;
  }
  return out;
}

export const EVAL_FORMATS = ['letters', 'cloze'] as const;
export type EvalFormat = (typeof EVAL_FORMATS)[number];
/** Few-shot examples when a spec does not say (lm-evaluation-harness's C-Eval/CMMLU setting). */
export const DEFAULT_SHOTS = 5;

/**
 * One entry of the config's `eval_tasks`: a task as `steelscope eval --task` takes it (poetry-mc, a
 * C-Eval/CMMLU CSV or folder, ppl:<file.txt>), with the eval command's --shots, --limit and --format.
 */
export const EvalTaskSpecSchema = obj({
  task: v.pipe(str, v.minLength(1, 'expected a task name or path')),
  shots: v.optional(intRange(0, 64)),
  limit: v.optional(intRange(1, 1_000_000)),
  format: v.optional(oneOf(EVAL_FORMATS)),
});
export type EvalTaskSpec = Output<typeof EvalTaskSpecSchema>;

/** The `task` field of a spec's records: poetry-mc, a CSV's subject or a folder's name, ppl:<file>; `:cloze` added. */
export function evalTaskName(spec: EvalTaskSpec): string {
  const base =
    spec.task
      .replace(/[\\/]+$/, '')
      .split(/[\\/]/)
      .pop() ?? spec.task;
  if (spec.task.startsWith('ppl:') || spec.task.endsWith('.txt')) return `ppl:${base.replace(/^ppl:/, '')}`;
  const name = base.replace(/\.csv$/, '').replace(/_(dev|val|test)$/, '');
  return spec.format === 'cloze' ? `${name}:cloze` : name;
}

/** Metrics of evals.jsonl a checkpoint can be ranked by, and which way is better. */
export const BEST_BY_METRICS = { acc: 'higher', acc_norm: 'higher', ppl: 'lower' } as const;
export type BestByMetric = keyof typeof BEST_BY_METRICS;
export const EVAL_LOSS = 'eval_loss';

/** The config's `best_by`: the manifest's eval loss, or a task's macro-average metric from evals.jsonl. */
export type BestBy = { kind: 'eval_loss' } | { kind: 'eval'; task: string; metric: BestByMetric };

/** Parses `eval_loss` or `<task>/<acc|acc_norm|ppl>`; a string says what is wrong. */
export function parseBestBy(value: string): BestBy | string {
  if (value === EVAL_LOSS) return { kind: 'eval_loss' };
  const slash = value.lastIndexOf('/');
  const metric = value.slice(slash + 1);
  if (slash <= 0 || !(metric in BEST_BY_METRICS)) {
    return `best_by must be "${EVAL_LOSS}" or "<task>/<metric>" with metric ${Object.keys(BEST_BY_METRICS).join(', ')} (e.g. "poetry-mc/acc"), got "${value}".`;
  }
  return { kind: 'eval', task: value.slice(0, slash), metric: metric as BestByMetric };
}

/**
 * A checkpoint's score by a task metric: the macro-average record of that task at that step (the
 * last one written, so a re-evaluation counts), oriented so that lower is better (acc negated).
 * Null when there is none or it is not finite.
 */
export function evalScore(
  records: readonly EvalRecord[],
  step: number,
  by: Extract<BestBy, { kind: 'eval' }>,
): number | null {
  let value: number | undefined;
  for (const r of records) {
    if (r.step === step && r.task === by.task && r.subject === MACRO_SUBJECT) value = r[by.metric] ?? value;
  }
  if (value === undefined || !Number.isFinite(value)) return null;
  return BEST_BY_METRICS[by.metric] === 'higher' ? -value : value;
}

/** The fields that name one score: an eval run again on the same step, task and subject replaces it. */
type ScoreKey = Pick<EvalRecord, 'step' | 'task' | 'subject'>;

/** The records each superseded by a later one of the same step, task and subject left out, ascending by step. */
export function latestScores<R extends ScoreKey>(records: readonly R[]): R[] {
  const byKey = new Map<string, R>();
  for (const r of records) byKey.set(`${r.task}\u0000${r.subject}\u0000${r.step}`, r);
  return [...byKey.values()].sort((a, b) => a.step - b.step);
}

/** The 95% interval of an accuracy, acc ± 1.96·stderr, clamped to [0, 1]; undefined without a stderr. */
export function interval95(acc: number, stderr: number | null | undefined): [number, number] | undefined {
  if (stderr === null || stderr === undefined || !Number.isFinite(stderr)) return undefined;
  return [Math.max(0, acc - 1.96 * stderr), Math.min(1, acc + 1.96 * stderr)];
}

/** A score as people read it: "poetry-mc 31.2%" (accuracy) or "ppl:x.txt 12.34" (perplexity). */
export function scoreText(r: { task: string; acc?: number | null; ppl?: number | null }): string {
  if (r.acc !== undefined && r.acc !== null) return `${r.task} ${(100 * r.acc).toFixed(1)}%`;
  if (r.ppl !== undefined && r.ppl !== null) return `${r.task} ${r.ppl.toFixed(2)}`;
  return r.task;
}

/** The macro averages of each task evaluated at `step` (the newest of each), by task name. */
export function checkpointScores<R extends ScoreKey>(records: readonly R[], step: number): R[] {
  return latestScores(records.filter((r) => r.step === step && r.subject === MACRO_SUBJECT)).sort((a, b) =>
    a.task.localeCompare(b.task),
  );
}

/** Where `steelscope eval` stands: `done` of `total` questions (or windows) of `what` (task/subject). */
export interface EvalProgress {
  step: number;
  what: string;
  done: number;
  total: number;
}

/** The progress line `steelscope eval` writes on stderr (at each whole percent of a task); parseEvalProgress reads it. */
export function evalProgressLine(p: EvalProgress): string {
  return `eval step ${p.step}: ${p.what} ${p.done}/${p.total} (${Math.floor((100 * p.done) / p.total)}%)`;
}

const PROGRESS_LINE = /^eval step (\d+): (.+) (\d+)\/(\d+) \(\d+%\)$/;

/** A stderr line of `steelscope eval` as progress; undefined for any other line. */
export function parseEvalProgress(line: string): EvalProgress | undefined {
  const m = PROGRESS_LINE.exec(line.trim());
  if (!m) return undefined;
  return { step: Number(m[1]), what: m[2], done: Number(m[3]), total: Number(m[4]) };
}
