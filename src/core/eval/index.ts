// Evaluation: multiple-choice tasks (C-Eval/CMMLU layouts, the shipped poetry-mc) and perplexity.
import { existsSync } from 'node:fs';
import { builtAsset } from '../data';
import type { EvalRecord } from '../../shared/eval';
import type { SteelLM } from '../model';
import type { BpeTokenizer } from '../tokenizer';
import { evaluateMc, evaluatePpl, type EvalOptions } from './run';
import { CsvError } from './csv';
import { parseTaskSpec, readMcTask, type TaskSpec } from './tasks';

export { appendEvalRecords, type EvalOptions } from './run';
export { CsvError } from './csv';

/** Every task read and checked before any is run, so a bad one costs no model time. */
export function resolveTasks(specs: readonly string[]): TaskSpec[] {
  return specs.map((s) => {
    const spec = parseTaskSpec(s, builtAsset);
    if (spec.kind === 'mc') readMcTask(spec.path);
    else if (!existsSync(spec.path)) throw new CsvError(`Text file ${spec.path} for the ppl task does not exist.`);
    return spec;
  });
}

export function runEvalTask(model: SteelLM, tokenizer: BpeTokenizer, spec: TaskSpec, opts: EvalOptions): EvalRecord[] {
  if (spec.kind === 'ppl') return evaluatePpl(model, tokenizer, spec.path, opts);
  return evaluateMc(model, tokenizer, readMcTask(spec.path), opts);
}
