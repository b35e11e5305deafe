// Training throughput of the model core against PyTorch on the same config, measured in the
// same run (timings never decide a test; this prints ratios against a baseline measured now).
//   npm run bench:train -- [--backend auto|cpu|wasm] [--threads 1,2] [--presets tiny,small]
// A step is what the trainer does: forward + backward, pre-clip global norm, clip + AdamW.
// PyTorch runs test/golden/reference.py bench with the same shape and thread count; on wasm ours
// runs at each thread count too (our matmul's helper threads, src/core/kernels/threads.ts).
// The PyTorch engine (steelscope train --engine torch) is measured beside both, threads pinned
// the same way (bench/torch-engine.ts; it needs the build: npm run bench:train builds first).
// Before measuring, it prints the BLAS and thread settings PyTorch runs with, and it prints no
// ratio against a reference BLAS, or where PyTorch at 2 threads is slower than at 1 (see
// bench/torch-baseline.ts; `bash scripts/install-bench.sh` sets up a fair PyTorch).
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { PRESETS, parameterCount, type PresetName, type TrainConfig } from '../src/shared/config';
import { selectBackend, type BackendName } from '../src/core/backend';
import { setSteelThreads, startSteelThreads, steelThreads, steelThreadsReady } from '../src/core/kernels/threads';
import { SteelLM } from '../src/core/model/gpt';
import { AdamW } from '../src/core/train/adamw';
import { makeBatch, trainStep } from '../test/golden/make-fixtures';
import { benchTorchEngine } from './torch-engine';
import {
  benchTorch,
  describeBlas,
  describeThreads,
  probeTorch,
  slowerThanOneThread,
  torchPython,
  TORCH_RUNS,
  unfairReason,
} from './torch-baseline';

/** Warm-up and timed steps per preset, sized so the whole bench stays near 2 minutes on 2 cores
 * (a `small` step takes seconds on wasm). PyTorch's steps are cheap, so it gets more of them. */
const PLAN: Record<'tiny' | 'small', { warmup: number; steps: number; torchSteps: number }> = {
  tiny: { warmup: 2, steps: 10, torchSteps: 20 },
  small: { warmup: 1, steps: 4, torchSteps: 10 },
};

interface Row {
  preset: string;
  params: number;
  tokensPerStep: number;
  threads: number;
  oursThreads: number;
  ours: number; // tokens/s
  torch: number | null;
  torchNote: string;
  /** The PyTorch engine's own tokens/s (`train --engine torch`, 1 process); null with engineNote. */
  engine: number | null;
  engineNote: string;
  /** Why there is no ratio for this row although both figures exist; '' when there is one. */
  refused: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Median tokens/s of our training step, after warm-up. */
function benchOurs(config: TrainConfig, warmup: number, steps: number): number {
  const model = SteelLM.init(config, config.seed);
  const optimizer = new AdamW(model.params, config);
  const batch = makeBatch(config, config.seed);
  const times: number[] = [];
  const tensorsBefore = tf.memory().numTensors;
  for (let step = 0; step < warmup + steps; step++) {
    const t0 = performance.now();
    trainStep(model, batch, config, step, optimizer);
    if (step >= warmup) times.push((performance.now() - t0) / 1000);
  }
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked > 0) console.warn(`  warning: ${leaked} tensors left behind by ${warmup + steps} steps`);
  optimizer.dispose();
  model.dispose();
  return (config.batch_size * config.seq_len) / median(times);
}

/** Threads our backend really uses: our wasm matmul's (tfjs's own wasm threads do not start under Node), cpu is single-threaded. */
function ourThreads(backend: BackendName): number {
  if (backend === 'wasm') return startSteelThreads() === '' ? steelThreads() : 1;
  return backend === 'cpu' ? 1 : NaN; // native: TensorFlow's own pool
}

/** Our tokens/s at `threads` (only wasm follows the count), NaN with a message where the step fails. */
async function measureOurs(
  backend: BackendName,
  preset: string,
  config: TrainConfig,
  plan: { warmup: number; steps: number },
  threads: number,
): Promise<number> {
  if (backend === 'wasm') {
    setSteelThreads(threads);
    await steelThreadsReady(); // products run on one thread until the helpers are up
  }
  try {
    return benchOurs(config, plan.warmup, plan.steps);
  } catch (err) {
    console.error(`  steelscope failed on ${preset}: ${err instanceof Error ? err.message : String(err)}`);
    return NaN;
  }
}

/**
 * Prints what PyTorch runs with before anything is measured: the BLAS it loaded, and per thread
 * count the thread settings; returns the python to use (null: none has torch) and, per thread
 * count, why its figure would be no baseline.
 */
function torchSetup(threadCounts: number[]): { python: string | null; unfair: Map<number, string> } {
  const python = torchPython();
  const unfair = new Map<number, string>();
  for (const threads of threadCounts) {
    const probe = probeTorch(python, threads);
    if ('error' in probe) {
      console.log(`pytorch: ${probe.error}`);
      return { python: null, unfair };
    }
    if (threads === threadCounts[0]) console.log(describeBlas(probe.env));
    console.log(`pytorch at ${threads} thread(s): ${describeThreads(probe.env)}`);
    const reason = unfairReason(probe.env, threads);
    if (reason) {
      console.log(`pytorch at ${threads} thread(s): no baseline: ${reason}.`);
      unfair.set(threads, reason);
    }
  }
  return { python, unfair };
}

function fmt(x: number | null, digits = 0): string {
  return x === null || !Number.isFinite(x) ? '-' : x.toFixed(digits);
}

function printTable(backend: string, rows: Row[]): void {
  const head = [
    'preset',
    'params',
    'tok/step',
    'threads',
    `steelscope (${backend})`,
    'pytorch',
    'ratio',
    'torch engine',
  ];
  const body = rows.map((r) => [
    r.preset,
    `${(r.params / 1e6).toFixed(2)}M`,
    String(r.tokensPerStep),
    r.oursThreads === r.threads ? String(r.threads) : `${r.threads} (ours ${fmt(r.oursThreads)})`,
    `${fmt(r.ours, 1)} tok/s`,
    r.torch === null ? r.torchNote : `${fmt(r.torch, 0)} tok/s`,
    r.torch === null || r.refused ? '-' : (r.ours / r.torch).toFixed(3),
    r.engine === null ? r.engineNote : `${fmt(r.engine, 0)} tok/s`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${body.map(line).join('\n')}`);
  console.log('ratio = steelscope tokens/s / PyTorch tokens/s (median step after warm-up, same shapes, same machine).');
  console.log(
    "torch engine = `steelscope train --engine torch`, 1 process: its train records' median tok_per_s after warm-up.",
  );
  for (const r of rows.filter((row) => row.refused))
    console.log(`no ratio for ${r.preset} at ${r.threads} thread(s): ${r.refused}.`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'auto' },
      threads: { type: 'string', default: '1,2' },
      presets: { type: 'string', default: 'tiny,small' },
    },
  });
  const startLoad = loadavg()[0];
  const choice = await selectBackend(values.backend as BackendName | 'auto');
  console.log(
    `steelscope backend: ${choice.name}${choice.kernels ? ` (${choice.kernels})` : ''}${choice.skipped.map((s) => `\n  skipped ${s.name}: ${s.reason}`).join('')}`,
  );
  const threadCounts = values.threads.split(',').map(Number);
  const torch = torchSetup(threadCounts);
  const rows: Row[] = [];
  for (const preset of values.presets.split(',') as PresetName[]) {
    const plan = PLAN[preset as keyof typeof PLAN];
    if (!plan) throw new Error(`bench covers presets ${Object.keys(PLAN).join(', ')}, not ${preset}`);
    const config = PRESETS[preset];
    // Only wasm follows the row's thread count (see ourThreads); other backends are measured once.
    let ours = NaN;
    let torchOneThread: number | undefined;
    for (const threads of threadCounts) {
      if (choice.name === 'wasm' || threads === threadCounts[0]) {
        console.log(
          `${preset}: steelscope at ${threads} thread(s), ${plan.warmup} warm-up + ${plan.steps} timed steps…`,
        );
        ours = await measureOurs(choice.name, preset, config, plan, threads);
      }
      const base = {
        preset,
        params: parameterCount(config),
        tokensPerStep: config.batch_size * config.seq_len,
        threads,
        oursThreads: ourThreads(choice.name),
        ours,
      };
      const unfair = torch.unfair.get(threads) ?? '';
      if (torch.python === null || unfair) {
        const note = torch.python === null ? 'not measured' : 'not measured (see below)';
        rows.push({ ...base, torch: null, torchNote: note, engine: null, engineNote: note, refused: unfair });
        continue;
      }
      const policies = threads > 1 ? ' (OpenMP wait policy PASSIVE, default, PASSIVE)' : '';
      console.log(
        `${preset}: pytorch at ${threads} thread(s), best of ${TORCH_RUNS} runs of ${plan.torchSteps} timed steps${policies}…`,
      );
      const measured = benchTorch(torch.python, config, threads, plan.torchSteps);
      console.log(`  runs: ${measured.runs}`);
      if (threads === 1 && measured.tokPerS !== null) torchOneThread = measured.tokPerS;
      const refused = measured.tokPerS === null ? '' : slowerThanOneThread(threads, measured.tokPerS, torchOneThread);
      console.log(
        `${preset}: torch engine at ${threads} thread(s), ${plan.warmup} warm-up + ${plan.torchSteps} timed steps…`,
      );
      const engine = benchTorchEngine(torch.python, preset, threads, plan.warmup, plan.torchSteps);
      if (engine.note) console.log(`  torch engine: ${engine.note}`);
      rows.push({
        ...base,
        torch: measured.tokPerS,
        torchNote: measured.note,
        engine: engine.tokPerS,
        engineNote: engine.note ? 'failed (see above)' : '',
        refused,
      });
    }
  }
  printTable(choice.name, rows);
  console.log(
    `load average (1 min) at start ${startLoad.toFixed(2)}, at end ${loadavg()[0].toFixed(2)}: other work on the machine skews both columns.`,
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
