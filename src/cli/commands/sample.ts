// `steelscope sample <checkpoint|run-dir> --prompt TEXT …`: load one checkpoint, generate, print.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../core/train/checkpoint';
import { latestValidCheckpoint } from '../../shared/node/checkpoints';
import { selectBackend } from '../../core/backend';
import { SteelLM } from '../../core/model';
import { Rng } from '../../core/rng';
import { generate } from '../../core/sample/generate';
import { Utf8Constraint } from '../../core/sample/utf8';
import { BpeTokenizer } from '../../core/tokenizer';
import { numberFlag, parseArgs, stringFlag, UsageError } from '../args';
import { backendFlag } from './train';

export const SAMPLE_USAGE =
  'steelscope sample <checkpoint-dir|run-dir> --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--valid-utf8]';

/** A checkpoint folder itself, or a run folder's newest valid checkpoint (those passed over reported on stderr). */
export function resolveCheckpointDir(
  path: string,
  report = (line: string) => process.stderr.write(line + '\n'),
): string {
  if (existsSync(join(path, 'manifest.json'))) return path;
  if (existsSync(join(path, 'run.json'))) {
    const found = latestValidCheckpoint(path, (folder, reason) =>
      report(`steelscope: skipping checkpoint ${folder.dir}: ${reason}`),
    );
    if (!found) throw new UsageError(`${path} has no complete checkpoint yet.`);
    return found.folder.dir;
  }
  throw new UsageError(`${path} is neither a checkpoint folder (with manifest.json) nor a run folder (with run.json).`);
}

export async function sampleCommand(argv: readonly string[], out: (line: string) => void): Promise<number> {
  const flags = {
    prompt: { kind: 'string' },
    'max-tokens': { kind: 'int' },
    temperature: { kind: 'number' },
    'top-k': { kind: 'int' },
    'top-p': { kind: 'number' },
    seed: { kind: 'int' },
    backend: { kind: 'string' },
    'valid-utf8': { kind: 'bool' },
  } as const;
  const p = parseArgs(argv, flags, 'sample');
  if (p.positional.length !== 1) throw new UsageError(`Usage: ${SAMPLE_USAGE}`);
  const prompt = stringFlag(p, 'prompt') ?? '';
  const maxTokens = numberFlag(p, 'max-tokens') ?? 64;
  const temperature = numberFlag(p, 'temperature') ?? 0.8;
  const topK = numberFlag(p, 'top-k') ?? 40;
  const topP = numberFlag(p, 'top-p') ?? 0.95;
  if (maxTokens < 1 || temperature < 0 || topK < 0 || topP <= 0 || topP > 1) {
    throw new UsageError('--max-tokens must be >= 1, --temperature >= 0, --top-k >= 0 and --top-p in (0, 1].');
  }
  await selectBackend(backendFlag(stringFlag(p, 'backend')));
  const ckpt = loadCheckpoint(resolveCheckpointDir(p.positional[0]));
  const tokenizer = BpeTokenizer.fromJSON(ckpt.tokenizerJson);
  const model = SteelLM.fromWeights(ckpt.manifest.config, new Map([...ckpt.weights].map(([k, t]) => [k, t.data])));
  try {
    const ids = generate(model, tokenizer.encode(prompt), {
      maxTokens,
      temperature,
      topK,
      topP,
      rng: new Rng(numberFlag(p, 'seed') ?? 0),
      stopIds: [tokenizer.eotId],
      utf8: p.flags.get('valid-utf8') === true ? Utf8Constraint.forTokenizer(tokenizer) : undefined,
    });
    out(prompt + tokenizer.decode(ids));
  } finally {
    model.dispose();
  }
  return 0;
}
