// A multiple-choice task rendered once into token ids: for every question the k-shot prompt and each
// choice's continuation, with the choice lengths acc_norm divides by. The one home of prompt
// building for both engines: `steelscope eval` and the TF.js trainer score it here, and the torch
// engine reads the same ids from the run folder (data/evals.json, written when the run is prepared
// and again on a resume when missing), so its prompts are these tokens, never a Python copy of the
// templates or the encoder. The torch engine scores them itself (src/engines/torch/evals.py) rather
// than this process scoring torch checkpoints with TF.js: on a GPU that is seconds, where TF.js on
// the CPU would take longer than training for any model beyond tiny.
import * as v from 'valibot';
import { evalTaskName, type EvalFormat, type EvalTaskSpec } from '../../shared/eval';
import { arr, int, nonNegativeInt, obj, oneOf, str, type Output } from '../../shared/schema';
import type { BpeTokenizer } from '../tokenizer';
import { choiceTexts, fewShotPrompt, TARGET_DELIMITER, type McTask } from './tasks';

export const RENDERED_EVALS_FORMAT = 'steelscope.evals/1';
export const RENDERED_EVALS_FILE = 'evals.json';

const ids = arr(nonNegativeInt);

export const RenderedTaskSchema = obj({
  kind: v.literal('mc'),
  /** The `task` of its evals.jsonl records. */
  task: str,
  shots: nonNegativeInt,
  choices: oneOf(['letters', 'cloze'] as const),
  subjects: arr(
    obj({
      name: str,
      questions: arr(
        obj({
          /** The prompt's ids (not truncated: the scorer keeps the last seq_len). */
          context: ids,
          /** Each choice's continuation ids: the delimiter and the letter or the text. */
          choices: arr(ids),
          /** Each choice's length in characters (code points), what acc_norm divides by. */
          lengths: arr(int),
          answer: nonNegativeInt,
        }),
      ),
    }),
  ),
});
export type RenderedTask = Output<typeof RenderedTaskSchema>;

/** A ppl task: the text file's ids (scored in windows of seq_len). */
export const RenderedPplSchema = obj({ kind: v.literal('ppl'), task: str, ids });
export type RenderedPpl = Output<typeof RenderedPplSchema>;

/** data/evals.json: the config's eval_tasks, rendered, in order. */
export const RenderedEvalsSchema = obj({
  format: v.literal(RENDERED_EVALS_FORMAT),
  tasks: arr(v.union([RenderedTaskSchema, RenderedPplSchema])),
});
export type RenderedEvals = Output<typeof RenderedEvalsSchema>;

/** Characters as Python's len() counts them (code points), the harness's completion length. */
function charLength(text: string): number {
  return [...text].length;
}

export function renderMcTask(tokenizer: BpeTokenizer, task: McTask, spec: EvalTaskSpec, shots: number): RenderedTask {
  const format: EvalFormat = spec.format ?? 'letters';
  return {
    kind: 'mc',
    task: evalTaskName(spec),
    shots,
    choices: format,
    subjects: task.subjects.map((subject) => ({
      name: subject.name,
      questions: subject.questions.slice(0, spec.limit ?? subject.questions.length).map((q) => {
        const texts = choiceTexts(q, format);
        return {
          context: tokenizer.encode(fewShotPrompt(subject, q, shots, format)),
          choices: texts.map((c) => tokenizer.encode(TARGET_DELIMITER + c)),
          lengths: texts.map(charLength),
          answer: q.answer,
        };
      }),
    })),
  };
}
