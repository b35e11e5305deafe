// The PyTorch engine's own tokens/s (src/engines/torch, as `steelscope train --engine torch` runs
// it: torchrun, 1 process, the default corpus prepared by the core) beside ours and the reference
// loop's: its train records' median tok_per_s after warm-up, with every thread pool pinned as the
// reference's (pinnedEnv). Eval, samples and checkpoints are off, so only training steps count.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PresetName } from '../src/shared/config';
import { parseJson } from '../src/shared/schema';
import { pinnedEnv } from './torch-baseline';

const CLI = join(__dirname, '..', 'dist', 'cli.js');
/** One engine run: data preparation (tokenizer training: seconds) plus the steps. */
const RUN_TIMEOUT_MS = 300_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[(s.length >> 1) - 1] + s[s.length >> 1]) / 2;
}

/** The train records' tok_per_s from step `warmup` on. */
function tokensPerSecond(metricsJsonl: string, warmup: number): number[] {
  const rates: number[] = [];
  for (const line of metricsJsonl.split('\n')) {
    const record = line.trim() ? parseJson(line) : undefined;
    if (typeof record !== 'object' || record === null || Array.isArray(record)) continue;
    const { kind, step, tok_per_s: rate } = record as Record<string, unknown>;
    if ((kind ?? 'train') === 'train' && typeof step === 'number' && step >= warmup && typeof rate === 'number')
      rates.push(rate);
  }
  return rates;
}

/** tokens/s of the torch engine on `preset` at `threads`, or null with the reason. */
export function benchTorchEngine(
  python: string,
  preset: PresetName,
  threads: number,
  warmup: number,
  steps: number,
): { tokPerS: number | null; note: string } {
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-bench-engine-'));
  try {
    const runDir = join(dir, 'run');
    const args = [
      CLI,
      'train',
      '--engine',
      'torch',
      '--nproc',
      '1',
      '--python',
      python,
      '--preset',
      preset,
      '--data',
      'default',
      '--run-dir',
      runDir,
      '--steps',
      String(warmup + steps),
      '--set',
      'eval_every=0',
      '--set',
      'sample_every=0',
      '--set',
      `checkpoint_every=${warmup + steps}`,
    ];
    const r = spawnSync(process.execPath, args, { env: pinnedEnv(threads), encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
    if (r.error) return { tokPerS: null, note: `the engine run failed (${r.error.message})` };
    if (r.status !== 0)
      return { tokPerS: null, note: `the engine exited ${r.status}: ${r.stderr.trim().split('\n').pop() ?? ''}` };
    const rates = tokensPerSecond(readFileSync(join(runDir, 'metrics.jsonl'), 'utf8'), warmup);
    return rates.length
      ? { tokPerS: median(rates), note: '' }
      : { tokPerS: null, note: 'no train records after warm-up' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
