// `steelscope prepare`: the data of a new run (tokenizer, shards, validation split, sample prompts'
// ids) written into the run folder once by this core, for an engine to train from; `train
// --engine torch` does it first, and a run started by hand (torchrun, Slurm) starts from it.
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolveCorpus } from '../../core/data';
import { prepareRun } from '../../core/train/prepare';
import { listFlag, parseArgs, stringFlag, UsageError } from '../args';
import { buildConfig, PREPARE_USAGE } from './train';

export { PREPARE_USAGE };

export function prepareCommand(argv: readonly string[], out: (line: string) => void): number {
  const flags = {
    preset: { kind: 'string' },
    data: { kind: 'string' },
    'run-dir': { kind: 'string' },
    set: { kind: 'list' },
  } as const;
  const p = parseArgs(argv, flags, 'prepare');
  const data = stringFlag(p, 'data');
  const runDir = stringFlag(p, 'run-dir');
  if (p.positional.length || !data || !runDir) throw new UsageError(`Usage: ${PREPARE_USAGE}`);
  const config = buildConfig(stringFlag(p, 'preset') ?? 'tiny', listFlag(p, 'set'), undefined);
  const dir = resolve(runDir);
  if (existsSync(join(dir, 'run.json'))) throw new UsageError(`${dir} already holds a run; prepare a new --run-dir.`);
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new UsageError(`${dir} exists and is not empty. Choose a new or empty --run-dir.`);
  resolveCorpus(data);
  prepareRun(data, config, dir, out);
  out(`prepared ${dir}: tokenizer.json, data/train.bin, data/val.bin, data/prepared.json, data/prompts.json`);
  return 0;
}
