// `steelscope train` and `steelscope resume`: parse, validate everything that can be validated
// before a file is written, then hand over to the core session.
import {
  applySettings,
  ConfigError,
  PRESET_NAMES,
  PRESETS,
  type PresetName,
  type TrainConfig,
} from '../../shared/config';
import type { BackendName } from '../../core/backend';
import {
  failPendingRun,
  markRequeued,
  markRequeueFailed,
  resumeRun,
  startRun,
  type RunControl,
} from '../../core/train/session';
import { readRunInfo } from '../../core/train/rundir';
import { ENGINE_NAMES, type EngineName, type RunStatus } from '../../shared/run';
import { listFlag, numberFlag, parseArgs, rawFlag, stringFlag, UsageError, type Parsed } from '../args';
import { progressDisplay } from '../progress';
import { runSummary } from '../summary';
import { resumeTorchRun, startTorchRun, type TorchOptions } from '../torchrun';

const BACKENDS = ['auto', 'tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;

export const TRAIN_USAGE = `steelscope train --preset <${PRESET_NAMES.join('|')}> --data <path|default> --run-dir <dir>
                 [--steps N] [--set key=value …] [--name NAME] [--backend ${BACKENDS.join('|')}]
                 [--engine tfjs|torch] [--nproc N|auto] [--python PATH]`;
export const RESUME_USAGE =
  'steelscope resume <run-dir> [--steps N] [--checkpoint <checkpoint-dir>] [--data <file|folder>] [--backend …]\n' +
  '                 [--engine tfjs|torch] [--nproc N|auto] [--python PATH]';
export const PREPARE_USAGE = `steelscope prepare --preset <${PRESET_NAMES.join('|')}> --data <path|default> --run-dir <dir> [--set key=value …]`;

export const ENGINE_FLAGS = {
  engine: { kind: 'string' },
  nproc: { kind: 'string' },
  python: { kind: 'string' },
} as const;

export function engineFlag(value: string | undefined, fallback: EngineName): EngineName {
  const name = value ?? fallback;
  if (!(ENGINE_NAMES as readonly string[]).includes(name))
    throw new UsageError(`--engine must be one of ${ENGINE_NAMES.join(', ')}; got "${name}".`);
  return name as EngineName;
}

/** --nproc and --python, which only the torch engine takes. */
export function torchOptions(p: Parsed, engine: EngineName): TorchOptions {
  const raw = stringFlag(p, 'nproc');
  if (engine !== 'torch' && (raw !== undefined || stringFlag(p, 'python') !== undefined)) {
    throw new UsageError('--nproc and --python are options of the PyTorch engine: add --engine torch.');
  }
  if (raw !== undefined && raw !== 'auto' && !/^[1-9]\d*$/.test(raw))
    throw new UsageError(`--nproc must be a positive integer or auto, got "${raw}".`);
  return { nproc: raw === undefined || raw === 'auto' ? 'auto' : Number(raw), python: stringFlag(p, 'python') };
}

export function backendFlag(value: string | undefined): BackendName | 'auto' {
  const name = value ?? 'auto';
  if (!(BACKENDS as readonly string[]).includes(name))
    throw new UsageError(`--backend must be one of ${BACKENDS.join(', ')}; got "${name}".`);
  return name as BackendName | 'auto';
}

function positiveSteps(steps: number | undefined): number | undefined {
  if (steps !== undefined && steps < 1) throw new UsageError(`--steps must be a positive integer, got ${steps}.`);
  return steps;
}

/** The preset with --set applied; --steps also sets the cosine length unless max_steps is set explicitly. */
export function buildConfig(preset: string, sets: string[], steps: number | undefined): TrainConfig {
  if (!(PRESET_NAMES as readonly string[]).includes(preset))
    throw new UsageError(`Unknown preset "${preset}". Presets: ${PRESET_NAMES.join(', ')}.`);
  const explicitMax = sets.some((s) => s.trim().startsWith('max_steps='));
  const withSteps = steps !== undefined && !explicitMax ? [`max_steps=${steps}`, ...sets] : sets;
  try {
    return applySettings(PRESETS[preset as PresetName], withSteps);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

/** The flags of a command that trains a run (`train`, `sft`): its data, folder, length, settings, engine. */
export const RUN_FLAGS = {
  data: { kind: 'string' },
  'run-dir': { kind: 'string' },
  steps: { kind: 'int' },
  set: { kind: 'list' },
  name: { kind: 'string' },
  backend: { kind: 'string' },
  ...ENGINE_FLAGS,
} as const;

const TRAIN_FLAGS = { preset: { kind: 'string' }, ...RUN_FLAGS } as const;

export async function trainCommand(argv: readonly string[], control: RunControl): Promise<number> {
  // Arguments refused (a bad --set, say) are an error of the run too: a Slurm job's pending run says so.
  return failPendingOnError(rawFlag(argv, TRAIN_FLAGS, 'run-dir'), () => train(argv, control));
}

async function train(argv: readonly string[], control: RunControl): Promise<number> {
  const p = parseArgs(argv, TRAIN_FLAGS, 'train');
  if (p.positional.length) throw new UsageError(`Unexpected argument "${p.positional[0]}". Usage: ${TRAIN_USAGE}`);
  const data = stringFlag(p, 'data');
  const runDir = stringFlag(p, 'run-dir');
  if (!data || !runDir) throw new UsageError(`--data and --run-dir are required. Usage: ${TRAIN_USAGE}`);
  const steps = positiveSteps(numberFlag(p, 'steps'));
  const config = buildConfig(stringFlag(p, 'preset') ?? 'tiny', listFlag(p, 'set'), steps);
  const engine = engineFlag(stringFlag(p, 'engine'), 'tfjs');
  const torch = torchOptions(p, engine);
  const name = stringFlag(p, 'name');
  const backend = engine === 'torch' ? undefined : backendFlag(stringFlag(p, 'backend'));
  const status = await withProgress(control, (shown) =>
    backend === undefined
      ? startTorchRun({ ...torch, runDir, config, data, name, steps: steps ?? config.max_steps }, shown)
      : startRun({ runDir, config, data, name, backend, steps: steps ?? config.max_steps }, shown),
  );
  return summarize(runDir, status, control);
}

/** The run's summary; the exit code of a train or resume that ended with `status`. */
function summarize(runDir: string, status: RunStatus, control: RunControl): number {
  control.log(runSummary(runDir, summaryOptions()).join('\n'));
  return status === 'finished' || status === 'stopped' ? 0 : 1;
}

export async function resumeCommand(argv: readonly string[], control: RunControl): Promise<number> {
  const p = parseArgs(
    argv,
    {
      steps: { kind: 'int' },
      backend: { kind: 'string' },
      checkpoint: { kind: 'string' },
      data: { kind: 'string' },
      ...ENGINE_FLAGS,
    },
    'resume',
  );
  if (p.positional.length !== 1) throw new UsageError(`Usage: ${RESUME_USAGE}`);
  const runDir = p.positional[0];
  return failPendingOnError(runDir, async () => {
    const steps = positiveSteps(numberFlag(p, 'steps'));
    // A run resumes on the engine that wrote it unless --engine says otherwise.
    const engine = engineFlag(stringFlag(p, 'engine'), readRunInfo(runDir).engine ?? 'tfjs');
    const torch = torchOptions(p, engine);
    const opts = { runDir, steps, checkpoint: stringFlag(p, 'checkpoint'), data: stringFlag(p, 'data') };
    const status = await withProgress(control, (shown) =>
      engine === 'torch'
        ? resumeTorchRun({ ...opts, ...torch }, shown)
        : resumeRun({ ...opts, backend: backendFlag(stringFlag(p, 'backend')) }, shown),
    );
    return summarize(runDir, status, control);
  });
}

/**
 * Runs `start`; when it throws (arguments refused, input found wrong) before the trainer took a
 * Slurm job's pending run, run.json says why.
 */
export async function failPendingOnError<T>(runDir: string | undefined, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    if (runDir !== undefined) failPendingRun(runDir, err);
    throw err;
  }
}

export const SLURM_REQUEUE_USAGE =
  'steelscope slurm-requeue [--failed] <run-dir>   (a Slurm batch script, its job requeued; --failed: it was not)';

/**
 * `steelscope slurm-requeue <run-dir>`: the batch script's step before its job goes back to the
 * queue (markRequeued). Exit 0 when run.json now says pending; 1 when the run has nothing to
 * continue (finished, failed, another job's), and the script then leaves the job ended.
 * `--failed`: Slurm refused the requeue after all; run.json says stopped again (markRequeueFailed).
 */
export function slurmRequeueCommand(argv: readonly string[], out: (line: string) => void): number {
  const p = parseArgs(argv, { failed: { kind: 'bool' } }, 'slurm-requeue');
  if (p.positional.length !== 1) throw new UsageError(`Usage: ${SLURM_REQUEUE_USAGE}`);
  const job = process.env.SLURM_JOB_ID;
  if (p.flags.get('failed') === true) {
    const undone = markRequeueFailed(p.positional[0]) === 'stopped';
    out(
      `steelscope: job ${job} was not requeued: ${undone ? 'the run is stopped (run.json)' : 'run.json left as it is'}`,
    );
    return undone ? 0 : 1;
  }
  const mark = markRequeued(p.positional[0]);
  out(
    mark === 'pending'
      ? `steelscope: job ${job} requeued: the run waits for it (run.json pending)`
      : `steelscope: the run is not continued by a requeue (${mark === 'ended' ? 'it has ended' : 'another job holds it'})`,
  );
  return mark === 'pending' ? 0 : 1;
}

/** Runs the loop with its log and step figures going to the progress display on stdout. */
export async function withProgress(
  control: RunControl,
  run: (shown: RunControl) => Promise<RunStatus>,
): Promise<RunStatus> {
  const display = progressDisplay(process.stdout);
  try {
    return await run({ ...control, log: display.log, progress: display.progress });
  } finally {
    display.end();
  }
}

export function summaryOptions(): { columns: number; cwd: string } {
  return { columns: process.stdout.columns ?? 80, cwd: process.cwd() };
}
