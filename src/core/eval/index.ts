// Evaluation: multiple-choice tasks (C-Eval/CMMLU layouts, the shipped poetry-mc) and perplexity.
import { builtAsset } from '../data';
import { DEFAULT_SHOTS, evalTaskName, type EvalRecord, type EvalTaskSpec } from '../../shared/eval';
import type { SteelLM } from '../model';
import type { BpeTokenizer } from '../tokenizer';
import { existsSync, readFileSync } from 'node:fs';
import { RENDERED_EVALS_FORMAT, renderMcTask, type RenderedEvals, type RenderedPpl, type RenderedTask } from './render';
import { evaluatePpl, evaluateRendered, type EvalOptions } from './run';
import { CsvError } from './csv';
import { parseTaskSpec, readMcTask, type McTask } from './tasks';

export { appendEvalRecords, mcRecords, scoreRendered, type EvalOptions } from './run';
export { RENDERED_EVALS_FILE, RENDERED_EVALS_FORMAT, renderMcTask, type RenderedTask } from './render';
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

/** The rendered prompts of a task, as the torch engine reads them (data/evals.json). */
export function renderTask(tokenizer: BpeTokenizer, t: ResolvedTask): RenderedTask | RenderedPpl {
  if (t.kind === 'mc') return renderMcTask(tokenizer, t.task, t.spec, t.shots);
  return { kind: 'ppl', task: evalTaskName(t.spec), ids: tokenizer.encode(readFileSync(t.path, 'utf8')) };
}

export function renderEvals(tokenizer: BpeTokenizer, tasks: readonly ResolvedTask[]): RenderedEvals {
  return { format: RENDERED_EVALS_FORMAT, tasks: tasks.map((t) => renderTask(tokenizer, t)) };
}

export function runEvalTask(model: SteelLM, tokenizer: BpeTokenizer, t: ResolvedTask, opts: EvalOptions): EvalRecord[] {
  if (t.kind === 'ppl') return evaluatePpl(model, tokenizer, t.path, opts);
  return evaluateRendered(model, renderMcTask(tokenizer, t.task, t.spec, t.shots), opts);
}
