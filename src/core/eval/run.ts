// Running an evaluation task against a loaded model: a multiple-choice task (per subject, then the
// macro average) or perplexity on a text file. Returns evals.jsonl records; appending them is the
// caller's (the CLI, the trainer at a checkpoint).
import { appendFileSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { encodeMetric } from '../../shared/run';
import { EVALS_FILE, MACRO_SUBJECT, macroAverage, type EvalRecord } from '../../shared/eval';
import type { SteelLM } from '../model';
import type { BpeTokenizer } from '../tokenizer';
import { choiceLogLikelihoods, argmaxIndex, meanStderr, streamLoss } from './score';
import { CHOICE_LETTERS, fewShotPrompt, TARGET_DELIMITER, type McTask } from './tasks';

export interface EvalOptions {
  shots: number;
  /** Questions per subject at most (the first ones); undefined = all. */
  limit?: number;
  step: number;
  /** Progress: questions (or windows) done of the total. */
  progress?: (done: number, total: number, what: string) => void;
}

export function evaluateMc(model: SteelLM, tokenizer: BpeTokenizer, task: McTask, opts: EvalOptions): EvalRecord[] {
  const choiceIds = CHOICE_LETTERS.map((l) => tokenizer.encode(TARGET_DELIMITER + l));
  const subjects = task.subjects.map((s) => ({
    ...s,
    questions: s.questions.slice(0, opts.limit ?? s.questions.length),
  }));
  const total = subjects.reduce((n, s) => n + s.questions.length, 0);
  let done = 0;
  const records: EvalRecord[] = subjects.map((subject) => {
    const correct = subject.questions.map((q) => {
      const context = tokenizer.encode(fewShotPrompt(subject, q, opts.shots));
      const scores = choiceLogLikelihoods(model, context, choiceIds);
      opts.progress?.(++done, total, `${task.name}/${subject.name}`);
      return argmaxIndex(scores) === q.answer ? 1 : 0;
    });
    const acc = correct.reduce<number>((a, b) => a + b, 0) / correct.length;
    const stderr = meanStderr(correct); // undefined below 2 questions (JSON has no NaN)
    const record: EvalRecord = {
      step: opts.step,
      t: Date.now(),
      task: task.name,
      subject: subject.name,
      n: correct.length,
      acc,
    };
    return Number.isFinite(stderr) ? { ...record, stderr } : record;
  });
  return [
    ...records,
    { step: opts.step, t: Date.now(), task: task.name, subject: MACRO_SUBJECT, ...macroAverage(records) },
  ];
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
