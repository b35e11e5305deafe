// `steelscope train` and `steelscope resume`: parse, validate everything that can be validated
// before a file is written, then hand over to the core session.
import { applySettings, ConfigError, PRESET_NAMES, PRESETS, type PresetName, type TrainConfig } from '../../shared/config';
import type { BackendName } from '../../core/backend';
import { resumeRun, startRun, type RunControl } from '../../core/train/session';
import { listFlag, numberFlag, parseArgs, stringFlag, UsageError } from '../args';

const BACKENDS = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;

export const TRAIN_USAGE = `steelscope train --preset <${PRESET_NAMES.join('|')}> --data <path|default> --run-dir <dir>
                 [--steps N] [--set key=value …] [--name NAME] [--backend ${BACKENDS.join('|')}]`;
export const RESUME_USAGE = 'steelscope resume <run-dir> [--steps N] [--checkpoint <checkpoint-dir>] [--backend …]';

export function backendFlag(value: string | undefined): BackendName | 'auto' {
  const name = value ?? 'auto';
  if (!(BACKENDS as readonly string[]).includes(name)) throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}; got "${name}".`);
  return name as BackendName | 'auto';
}

function positiveSteps(steps: number | undefined): number | undefined {
  if (steps !== undefined && steps < 1) throw new UsageError(`--steps must be a positive integer, got ${steps}.`);
  return steps;
}

/** The preset with --set applied; --steps also sets the cosine length unless max_steps is set explicitly. */
function buildConfig(preset: string, sets: string[], steps: number | undefined): TrainConfig {
  if (!(PRESET_NAMES as readonly string[]).includes(preset)) throw new UsageError(`Unknown preset "${preset}". Presets: ${PRESET_NAMES.join(', ')}.`);
  const explicitMax = sets.some((s) => s.trim().startsWith('max_steps='));
  const withSteps = steps !== undefined && !explicitMax ? [`max_steps=${steps}`, ...sets] : sets;
  try {
    return applySettings(PRESETS[preset as PresetName], withSteps);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

export async function trainCommand(argv: readonly string[], control: RunControl): Promise<number> {
  const flags = { preset: { kind: 'string' }, data: { kind: 'string' }, 'run-dir': { kind: 'string' }, steps: { kind: 'int' }, set: { kind: 'list' }, name: { kind: 'string' }, backend: { kind: 'string' } } as const;
  const p = parseArgs(argv, flags, 'train');
  if (p.positional.length) throw new UsageError(`Unexpected argument "${p.positional[0]}". Usage: ${TRAIN_USAGE}`);
  const data = stringFlag(p, 'data');
  const runDir = stringFlag(p, 'run-dir');
  if (!data || !runDir) throw new UsageError(`--data and --run-dir are required. Usage: ${TRAIN_USAGE}`);
  const steps = positiveSteps(numberFlag(p, 'steps'));
  const config = buildConfig(stringFlag(p, 'preset') ?? 'tiny', listFlag(p, 'set'), steps);
  const backend = backendFlag(stringFlag(p, 'backend'));
  const status = await startRun({ runDir, config, data, name: stringFlag(p, 'name'), backend, steps: steps ?? config.max_steps }, control);
  return status === 'finished' || status === 'stopped' ? 0 : 1;
}

export async function resumeCommand(argv: readonly string[], control: RunControl): Promise<number> {
  const p = parseArgs(argv, { steps: { kind: 'int' }, backend: { kind: 'string' }, checkpoint: { kind: 'string' } }, 'resume');
  if (p.positional.length !== 1) throw new UsageError(`Usage: ${RESUME_USAGE}`);
  const steps = positiveSteps(numberFlag(p, 'steps'));
  const opts = { runDir: p.positional[0], steps, backend: backendFlag(stringFlag(p, 'backend')), checkpoint: stringFlag(p, 'checkpoint') };
  const status = await resumeRun(opts, control);
  return status === 'finished' || status === 'stopped' ? 0 : 1;
}
