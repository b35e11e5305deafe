// `steelscope info <preset|checkpoint|run-dir>`: the model's shape and parameter count.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { headDim, parameterCount, PRESET_NAMES, PRESETS, type PresetName, type TrainConfig } from '../../shared/config';
import { checkCheckpoint } from '../../shared/node/checkpoints';
import { parseArgs, UsageError } from '../args';
import { resolveCheckpointDir } from './sample';

export function describeModel(config: TrainConfig): string[] {
  const n = parameterCount(config);
  return [
    `layers ${config.n_layer}, hidden ${config.n_embd}, heads ${config.n_head} (kv ${config.n_kv_head}, head_dim ${headDim(config)}), ffn ${config.intermediate_size}`,
    `vocab ${config.vocab_size}, context ${config.seq_len}, embeddings ${config.tie_embeddings ? 'tied' : 'untied'}, rope_theta ${config.rope_theta}`,
    `parameters ${n.toLocaleString('en-US')} (${formatCount(n)})`,
  ];
}

function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  return `${(n / 1e3).toFixed(1)}K`;
}

export function infoCommand(argv: readonly string[], out: (line: string) => void): number {
  const p = parseArgs(argv, {}, 'info');
  if (p.positional.length !== 1)
    throw new UsageError(`Usage: steelscope info <${PRESET_NAMES.join('|')}|checkpoint-dir|run-dir>`);
  const target = p.positional[0];
  if ((PRESET_NAMES as readonly string[]).includes(target) && !existsSync(target)) {
    out(`preset ${target}`);
    describeModel(PRESETS[target as PresetName]).forEach((l) => out(`  ${l}`));
    return 0;
  }
  if (!existsSync(target))
    throw new UsageError(`"${target}" is not a preset (${PRESET_NAMES.join(', ')}) nor an existing folder.`);
  const dir = resolveCheckpointDir(target);
  const result = checkCheckpoint(dir, { hashes: true });
  if (!result.ok) throw new UsageError(`Checkpoint ${dir} is not usable: ${result.reason}.`);
  const m = result.manifest;
  out(`checkpoint ${dir}`);
  out(
    `  step ${m.step}, tokens ${m.tokens.toLocaleString('en-US')}, eval loss ${m.eval_loss ?? 'n/a'}, saved ${m.createdAt}`,
  );
  describeModel(m.config).forEach((l) => out(`  ${l}`));
  out(`  files: ${m.files.map((f) => f.name).join(', ')}${existsSync(join(dir, 'DONE')) ? ', DONE' : ''}`);
  return 0;
}
