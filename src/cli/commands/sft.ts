// `steelscope sft`: parse and hand over to the core's fine-tuning session.
import { startSft } from '../../core/train/sft';
import type { RunControl } from '../../core/train/session';
import { listFlag, numberFlag, parseArgs, rawFlag, stringFlag, UsageError } from '../args';
import { runSummary } from '../summary';
import { startTorchSft } from '../torchrun';
import {
  backendFlag,
  engineFlag,
  failPendingOnError,
  RUN_FLAGS,
  summaryOptions,
  torchOptions,
  withProgress,
} from './train';

export const SFT_USAGE = `steelscope sft --from <checkpoint-dir> --data <chat.jsonl|poetry-sft> --run-dir <dir>
                 [--steps N] [--set key=value …] [--name NAME] [--backend …]
                 [--engine tfjs|torch] [--nproc N|auto] [--python PATH]
  lr defaults to a tenth of the base run's peak lr, min_lr to a tenth of lr (--set lr=… min_lr=… to choose)`;

const DEFAULT_STEPS = 200;

const SFT_FLAGS = { from: { kind: 'string' }, ...RUN_FLAGS } as const;

export async function sftCommand(argv: readonly string[], control: RunControl): Promise<number> {
  // As for train: arguments or input refused mark a Slurm job's pending run failed, with the reason.
  return failPendingOnError(rawFlag(argv, SFT_FLAGS, 'run-dir'), () => sft(argv, control));
}

async function sft(argv: readonly string[], control: RunControl): Promise<number> {
  const p = parseArgs(argv, SFT_FLAGS, 'sft');
  if (p.positional.length) throw new UsageError(`Unexpected argument "${p.positional[0]}". Usage: ${SFT_USAGE}`);
  const from = stringFlag(p, 'from');
  const data = stringFlag(p, 'data');
  const runDir = stringFlag(p, 'run-dir');
  if (!from || !data || !runDir) throw new UsageError(`--from, --data and --run-dir are required. Usage: ${SFT_USAGE}`);
  const steps = numberFlag(p, 'steps') ?? DEFAULT_STEPS;
  if (steps < 1) throw new UsageError(`--steps must be a positive integer, got ${steps}.`);
  const engine = engineFlag(stringFlag(p, 'engine'), 'tfjs');
  const torch = torchOptions(p, engine);
  const opts = { from, data, runDir, steps, sets: listFlag(p, 'set'), name: stringFlag(p, 'name') };
  const status = await withProgress(control, (shown) =>
    engine === 'torch'
      ? startTorchSft({ ...opts, ...torch }, shown)
      : startSft({ ...opts, backend: backendFlag(stringFlag(p, 'backend')) }, shown),
  );
  control.log(runSummary(runDir, summaryOptions()).join('\n'));
  return status === 'finished' || status === 'stopped' ? 0 : 1;
}
