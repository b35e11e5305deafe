// Running an evaluation task against a loaded model: a multiple-choice task (rendered once, scored,
// then per subject and the macro average) or perplexity on a text file. Returns evals.jsonl records;
// appending them is the caller's (the CLI, the trainer at a checkpoint).
import { appendFileSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { encodeMetric } from '../../shared/run';
import { EVALS_FILE, MACRO_SUBJECT, macroAverage, type EvalRecord } from '../../shared/eval';
import type { SteelLM } from '../model';
import type { BpeTokenizer } from '../tokenizer';
import type { RenderedTask } from './render';
import { choiceLogLikelihoods, argmaxIndex, meanStderr, streamLoss } from './score';

export interface EvalOptions {
  step: number;
  /** Progress: questions (or windows) done of the total. */
  progress?: (done: number, total: number, what: string) => void;
}

/** Per subject, per question, each choice's log-likelihood. */
export type ChoiceScores = number[][][];

export function scoreRendered(model: SteelLM, rendered: RenderedTask, opts: EvalOptions): ChoiceScores {
  const total = rendered.subjects.reduce((n, s) => n + s.questions.length, 0);
  let done = 0;
  return rendered.subjects.map((subject) =>
    subject.questions.map((q) => {
      const scores = choiceLogLikelihoods(model, q.context, q.choices);
      opts.progress?.(++done, total, `${rendered.task}/${subject.name}`);
      return scores;
    }),
  );
}

/** acc and acc_norm of 0/1 outcomes with their stderrs (a stderr is left out below 2 questions: JSON has no NaN). */
function accuracy(outcomes: number[], key: 'acc' | 'acc_norm'): Partial<EvalRecord> {
  const mean = outcomes.reduce((a, b) => a + b, 0) / outcomes.length;
  const stderr = meanStderr(outcomes);
  const stderrKey = key === 'acc' ? 'stderr' : 'acc_norm_stderr';
  return Number.isFinite(stderr) ? { [key]: mean, [stderrKey]: stderr } : { [key]: mean };
}

/**
 * The records of a scored task: acc (argmax of the log-likelihoods) and acc_norm (argmax of each
 * divided by its choice's length, lm-evaluation-harness's rule) per subject, then the macro average.
 * src/engines/torch/evals.py mirrors this function (mc_records) for the torch engine.
 */
export function mcRecords(rendered: RenderedTask, scores: ChoiceScores, step: number): EvalRecord[] {
  const common = { step, task: rendered.task, shots: rendered.shots, format: rendered.choices };
  const records: EvalRecord[] = rendered.subjects.map((subject, s) => {
    const correct = subject.questions.map((q, i) => (argmaxIndex(scores[s][i]) === q.answer ? 1 : 0));
    const correctNorm = subject.questions.map((q, i) =>
      argmaxIndex(scores[s][i].map((ll, c) => ll / q.lengths[c])) === q.answer ? 1 : 0,
    );
    return {
      ...common,
      t: Date.now(),
      subject: subject.name,
      n: correct.length,
      ...accuracy(correct, 'acc'),
      ...accuracy(correctNorm, 'acc_norm'),
    };
  });
  return [...records, { ...common, t: Date.now(), subject: MACRO_SUBJECT, ...macroAverage(records) }];
}

export function evaluateRendered(model: SteelLM, rendered: RenderedTask, opts: EvalOptions): EvalRecord[] {
  return mcRecords(rendered, scoreRendered(model, rendered, opts), opts.step);
}

/** Perplexity of a UTF-8 text file, in windows of seq_len. */
export function evaluatePpl(model: SteelLM, tokenizer: BpeTokenizer, file: string, opts: EvalOptions): EvalRecord[] {
  const ids = tokenizer.encode(readFileSync(file, 'utf8'));
  const { loss, tokens } = streamLoss(model, ids, (d, n) => opts.progress?.(d, n, `ppl ${basename(file)}`));
  return [
    {
      step: opts.step,
      t: Date.now(),
      task: `ppl:${basename(file)}`,
      subject: MACRO_SUBJECT,
      n: tokens,
      ppl: Math.exp(loss),
    },
  ];
}

/** Appends records to the run folder's evals.jsonl (non-finite numbers as the run format spells them). */
export function appendEvalRecords(runDir: string, records: readonly EvalRecord[]): void {
  const encode = (_key: string, value: unknown) => (typeof value === 'number' ? encodeMetric(value) : value);
  appendFileSync(join(runDir, EVALS_FILE), records.map((r) => JSON.stringify(r, encode) + '\n').join(''));
}
