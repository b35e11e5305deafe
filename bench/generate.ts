// Generation speed with and without the KV cache, measured in the same run (timings never decide
// a test; this prints ratios against the no-cache baseline measured now).
//   npm run bench:generate -- [--backend wasm|cpu|auto] [--tokens 64] [--repeats 3] [--prompts 16,256]
// Shape: the `tiny` preset (4 layers, hidden 128, 4 heads, vocab 2048) with seq_len raised from
// 128 to 512, so a 256-token prompt and its continuation fit in the context without a crop.
// Weights are a fixed random init: speed does not depend on what the model learned.
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend, type BackendName } from '../src/core/backend';
import { SteelLM } from '../src/core/model/gpt';
import { Rng } from '../src/core/rng';
import { tokenStream } from '../src/core/sample/generate';
import { PRESETS, type TrainConfig } from '../src/shared/config';

const CONFIG: TrainConfig = { ...PRESETS.tiny, seq_len: 512 };

interface Timing {
  firstMs: number; // prompt forward + first sample
  tokPerS: number; // generated tokens / total time, first token included
  ids: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function timeOnce(model: SteelLM, prompt: number[], tokens: number, useCache: boolean): Timing {
  const ids: number[] = [];
  const t0 = performance.now();
  let firstMs = 0;
  for (const id of tokenStream(model, prompt, {
    maxTokens: tokens,
    temperature: 0,
    topK: 0,
    topP: 1,
    rng: new Rng(0),
    useCache,
  })) {
    if (ids.length === 0) firstMs = performance.now() - t0;
    ids.push(id);
  }
  return { firstMs, tokPerS: tokens / ((performance.now() - t0) / 1000), ids };
}

/** Median of `repeats` timed runs after one short warm-up run. */
function bench(model: SteelLM, prompt: number[], tokens: number, useCache: boolean, repeats: number): Timing {
  timeOnce(model, prompt, 4, useCache);
  const runs = Array.from({ length: repeats }, () => timeOnce(model, prompt, tokens, useCache));
  return { firstMs: median(runs.map((r) => r.firstMs)), tokPerS: median(runs.map((r) => r.tokPerS)), ids: runs[0].ids };
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(
    `\n${line(rows[0])}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${rows.slice(1).map(line).join('\n')}`,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      backend: { type: 'string', default: 'wasm' },
      tokens: { type: 'string', default: '64' },
      repeats: { type: 'string', default: '3' },
      prompts: { type: 'string', default: '16,256' },
    },
  });
  const choice = await selectBackend(values.backend as BackendName | 'auto');
  const tokens = Number(values.tokens);
  const repeats = Number(values.repeats);
  console.log(
    `backend: ${choice.name}; model: tiny shape, seq_len ${CONFIG.seq_len}; ${tokens} greedy tokens per run, median of ${repeats}`,
  );
  const model = SteelLM.init(CONFIG, CONFIG.seed);
  const rng = new Rng(1);
  const rows = [
    ['prompt', 'no cache tok/s', 'KV cache tok/s', 'speed-up', 'first token (no cache / cache)', 'same ids'],
  ];
  const tensorsBefore = tf.memory().numTensors;
  for (const length of values.prompts.split(',').map(Number)) {
    if (length + tokens > CONFIG.seq_len)
      throw new Error(`prompt ${length} + ${tokens} tokens exceed seq_len ${CONFIG.seq_len}`);
    const prompt = Array.from({ length }, () => Math.floor(rng.next() * (CONFIG.vocab_size - 3)));
    const full = bench(model, prompt, tokens, false, repeats);
    const cached = bench(model, prompt, tokens, true, repeats);
    rows.push([
      `${length} tokens`,
      full.tokPerS.toFixed(1),
      cached.tokPerS.toFixed(1),
      `${(cached.tokPerS / full.tokPerS).toFixed(2)}x`,
      `${full.firstMs.toFixed(1)} / ${cached.firstMs.toFixed(1)} ms`,
      full.ids.join() === cached.ids.join() ? 'yes' : 'NO',
    ]);
  }
  printTable(rows);
  console.log('tok/s = generated tokens / wall time of the whole generation (prompt forward included).');
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked !== 0) console.warn(`warning: ${leaked} tensors left behind`);
  model.dispose();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
