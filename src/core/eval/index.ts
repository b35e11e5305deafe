// Evaluation: multiple-choice tasks (C-Eval/CMMLU layouts, the shipped poetry-mc) and perplexity.
import { existsSync } from 'node:fs';
import { builtAsset } from '../data';
import { DEFAULT_SHOTS, evalTaskName, type EvalRecord, type EvalTaskSpec } from '../../shared/eval';
import type { SteelLM } from '../model';
import type { BpeTokenizer } from '../tokenizer';
import { renderMcTask, type RenderedTask } from './render';
import { evaluatePpl, evaluateRendered, type EvalOptions } from './run';
import { CsvError } from './csv';
import { parseTaskSpec, readMcTask, type McTask } from './tasks';

export { appendEvalRecords, mcRecords, scoreRendered, type EvalOptions } from './run';
export { RENDERED_TASK_FORMAT, RenderedTaskSchema, renderMcTask, type RenderedTask } from './render';
export { CsvError } from './csv';

/** A task read and checked: a multiple-choice task with its spec, or a ppl text file. */
export type ResolvedTask =
  { kind: 'mc'; spec: EvalTaskSpec; task: McTask; shots: number } | { kind: 'ppl'; spec: EvalTaskSpec; path: string };

/** Every task read and checked before any is run, so a bad one costs no model time. */
export function resolveTasks(specs: readonly EvalTaskSpec[]): ResolvedTask[] {
  const names = new Set<string>();
  return specs.map((spec) => {
    const name = evalTaskName(spec);
    if (names.has(name)) throw new CsvError(`Task ${name} is listed twice; give each task (and format) once.`);
    names.add(name);
    const parsed = parseTaskSpec(spec.task, builtAsset);
    if (parsed.kind === 'mc')
      return { kind: 'mc', spec, task: readMcTask(parsed.path), shots: spec.shots ?? DEFAULT_SHOTS };
    if (!existsSync(parsed.path)) throw new CsvError(`Text file ${parsed.path} for the ppl task does not exist.`);
    return { kind: 'ppl', spec, path: parsed.path };
  });
}

/** The rendered prompts of a multiple-choice task (what the torch engine reads), undefined for ppl. */
export function renderTask(tokenizer: BpeTokenizer, t: ResolvedTask): RenderedTask | undefined {
  return t.kind === 'mc' ? renderMcTask(tokenizer, t.task, t.spec, t.shots) : undefined;
}

export function runEvalTask(model: SteelLM, tokenizer: BpeTokenizer, t: ResolvedTask, opts: EvalOptions): EvalRecord[] {
  if (t.kind === 'ppl') return evaluatePpl(model, tokenizer, t.path, opts);
  return evaluateRendered(model, renderMcTask(tokenizer, t.task, t.spec, t.shots), opts);
}
