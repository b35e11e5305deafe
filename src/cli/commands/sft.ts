// `steelscope sft`: parse and hand over to the core's fine-tuning session.
import { startSft } from '../../core/train/sft';
import type { RunControl } from '../../core/train/session';
import { listFlag, numberFlag, parseArgs, stringFlag, UsageError } from '../args';
import { progressDisplay } from '../progress';
import { runSummary } from '../summary';
import { backendFlag } from './train';

export const SFT_USAGE = `steelscope sft --from <checkpoint-dir> --data <chat.jsonl|poetry-sft> --run-dir <dir>
                 [--steps N] [--set key=value …] [--name NAME] [--backend …]`;

const DEFAULT_STEPS = 200;

export async function sftCommand(argv: readonly string[], control: RunControl): Promise<number> {
  const flags = {
    from: { kind: 'string' },
    data: { kind: 'string' },
    'run-dir': { kind: 'string' },
    steps: { kind: 'int' },
    set: { kind: 'list' },
    name: { kind: 'string' },
    backend: { kind: 'string' },
  } as const;
  const p = parseArgs(argv, flags, 'sft');
  if (p.positional.length) throw new UsageError(`Unexpected argument "${p.positional[0]}". Usage: ${SFT_USAGE}`);
  const from = stringFlag(p, 'from');
  const data = stringFlag(p, 'data');
  const runDir = stringFlag(p, 'run-dir');
  if (!from || !data || !runDir) throw new UsageError(`--from, --data and --run-dir are required. Usage: ${SFT_USAGE}`);
  const steps = numberFlag(p, 'steps') ?? DEFAULT_STEPS;
  if (steps < 1) throw new UsageError(`--steps must be a positive integer, got ${steps}.`);
  const display = progressDisplay(process.stdout);
  let status;
  try {
    const shown = { ...control, log: display.log, progress: display.progress };
    status = await startSft(
      {
        from,
        data,
        runDir,
        steps,
        sets: listFlag(p, 'set'),
        name: stringFlag(p, 'name'),
        backend: backendFlag(stringFlag(p, 'backend')),
      },
      shown,
    );
  } finally {
    display.end();
  }
  control.log(runSummary(runDir, { columns: process.stdout.columns ?? 80, cwd: process.cwd() }).join('\n'));
  return status === 'finished' || status === 'stopped' ? 0 : 1;
}
