// `steelscope eval <checkpoint|run-dir> --task T …`: score one checkpoint on evaluation tasks; a
// table on stdout, progress on stderr, the records appended to the run folder's evals.jsonl.
import { dirname } from 'node:path';
import { selectBackend } from '../../core/backend';
import { appendEvalRecords, resolveTasks, runEvalTask } from '../../core/eval';
import { SteelLM } from '../../core/model';
import { loadCheckpoint } from '../../core/train/checkpoint';
import { BpeTokenizer } from '../../core/tokenizer';
import { evalProgressLine, MACRO_SUBJECT, type EvalRecord } from '../../shared/eval';
import { listFlag, numberFlag, parseArgs, stringFlag, UsageError } from '../args';
import { resolveCheckpointDir } from './sample';
import { backendFlag } from './train';

export const EVAL_USAGE =
  'steelscope eval <checkpoint-dir|run-dir> --task <poetry-mc|file.csv|folder|ppl:file.txt> [--task …] [--shots 5] [--limit N] [--format letters|cloze] [--initial] [--no-write]';

function fmt(x: number | undefined, digits = 4): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

/** The 95% interval of a mean, ±1.96 stderr; empty when either is unknown. */
function interval(mean: number | undefined, stderr: number | undefined): string {
  if (mean === undefined || stderr === undefined || !Number.isFinite(stderr)) return '';
  return `[${fmt(mean - 1.96 * stderr, 3)}, ${fmt(mean + 1.96 * stderr, 3)}]`;
}

/** One line per record: task, subject, n, acc and acc_norm ± stderr with their 95% intervals, or ppl. */
export function evalTable(records: readonly EvalRecord[]): string[] {
  const rows = records.map((r) => [
    r.task,
    r.subject === MACRO_SUBJECT ? '(average)' : r.subject,
    String(r.n),
    r.ppl !== undefined ? `ppl ${fmt(r.ppl, 2)}` : `${fmt(r.acc)} ± ${fmt(r.stderr)}`,
    interval(r.acc, r.stderr),
    r.acc_norm !== undefined ? `${fmt(r.acc_norm)} ± ${fmt(r.acc_norm_stderr)}` : '',
    interval(r.acc_norm, r.acc_norm_stderr),
  ]);
  const head = ['task', 'subject', 'n', 'acc ± stderr', '95% interval', 'acc_norm ± stderr', '95% interval'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd(),
  );
}

export async function evalCommand(argv: readonly string[], out: (line: string) => void): Promise<number> {
  const flags = {
    task: { kind: 'list' },
    shots: { kind: 'int' },
    limit: { kind: 'int' },
    format: { kind: 'string' },
    initial: { kind: 'bool' },
    'no-write': { kind: 'bool' },
    backend: { kind: 'string' },
  } as const;
  const p = parseArgs(argv, flags, 'eval');
  const tasks = listFlag(p, 'task');
  if (p.positional.length !== 1 || tasks.length === 0) throw new UsageError(`Usage: ${EVAL_USAGE}`);
  const shots = numberFlag(p, 'shots') ?? 5;
  const limit = numberFlag(p, 'limit');
  if (shots < 0 || (limit !== undefined && limit < 1)) throw new UsageError('--shots must be >= 0 and --limit >= 1.');
  const format = stringFlag(p, 'format') ?? 'letters';
  if (format !== 'letters' && format !== 'cloze')
    throw new UsageError(`--format must be letters or cloze, got "${format}".`);
  const specs = resolveTasks(tasks.map((task) => ({ task, shots, limit, format })));
  await selectBackend(backendFlag(stringFlag(p, 'backend')));
  const dir = resolveCheckpointDir(p.positional[0]);
  const ckpt = loadCheckpoint(dir);
  const config = ckpt.manifest.config;
  const tokenizer = BpeTokenizer.fromJSON(ckpt.tokenizerJson);
  // --initial: the run's weights before training (seeded as the trainer seeds them): step 0.
  const initial = p.flags.get('initial') === true;
  const model = initial
    ? SteelLM.init(config, config.seed)
    : SteelLM.fromWeights(config, new Map([...ckpt.weights].map(([k, t]) => [k, t.data])));
  const step = initial ? 0 : ckpt.manifest.step;
  const records: EvalRecord[] = [];
  try {
    for (const spec of specs) {
      let shown = -1;
      const progress = (done: number, total: number, what: string) => {
        const pct = Math.floor((100 * done) / total);
        if (pct === shown && done !== total) return;
        shown = pct;
        process.stderr.write(evalProgressLine({ step, what, done, total }) + '\n');
      };
      records.push(...runEvalTask(model, tokenizer, spec, { step, progress }));
    }
  } finally {
    model.dispose();
  }
  for (const line of evalTable(records)) out(line);
  // The run folder holds checkpoints/step-N/: two levels up from the checkpoint.
  if (p.flags.get('no-write') !== true) appendEvalRecords(dirname(dirname(dir)), records);
  return 0;
}
