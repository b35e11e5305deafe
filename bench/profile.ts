// Per-kernel time of one training step on wasm (forward + backward + norm + AdamW), summed by
// kernel name, before and after, alternating step by step:
//   --compare stock    before: tfjs-backend-wasm's own kernels (with our UnsortedSegmentSum, which it
//                      lacks); after: our SIMD kernels (1 thread);
//   --compare steel    before: tfjs kernels + our XNNPACK matmul routing; after: our SIMD kernels (1 thread);
//   --compare threads  before: our SIMD kernels on 1 thread; after: on N threads (--threads N, default 2).
// Kernel times are wall-clock around each kernel; a customGrad wrapper's time includes its kernels.
//   node --import tsx bench/profile.ts [--preset tiny|small] [--steps N] [--compare steel|threads] [--threads N]
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { PRESETS, type PresetName } from '../src/shared/config';
import { selectBackend } from '../src/core/backend';
import { setSteelKernelsEnabled } from '../src/core/kernels/steel';
import { setSteelThreads, steelThreadsReady } from '../src/core/kernels/threads';
import { registerWasmKernels } from '../src/core/kernels/wasm';
import { SteelLM } from '../src/core/model/gpt';
import { AdamW } from '../src/core/train/adamw';
import { makeBatch, trainStep } from '../test/golden/make-fixtures';

interface Agg {
  ms: number;
  calls: number;
}

function add(map: Map<string, Agg>, key: string, ms: number): void {
  const a = map.get(key) ?? { ms: 0, calls: 0 };
  a.ms += ms;
  a.calls += 1;
  map.set(key, a);
}

type Side = 'before' | 'after';

/** stock: "before" is tfjs's kernels; steel: XNNPACK matmul via transposes, copying Identity, no fused ops; threads: 1 thread against N. */
function user(compare: string, threads: number): (side: Side) => void {
  if (compare === 'threads') return (side) => setSteelThreads(side === 'after' ? threads : 1);
  return (side) => {
    setSteelThreads(1);
    setSteelKernelsEnabled(side === 'after');
    registerWasmKernels({ sharedIdentity: side === 'after', batchMatMul: compare !== 'stock' || side === 'after' });
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'tiny' },
      steps: { type: 'string', default: '3' },
      compare: { type: 'string', default: 'steel' },
      threads: { type: 'string', default: '2' },
    },
  });
  await selectBackend('wasm');
  const use = user(values.compare, Number(values.threads));
  if (values.compare === 'threads') {
    setSteelThreads(Number(values.threads));
    await steelThreadsReady();
  }
  const config = PRESETS[values.preset as PresetName];
  const model = SteelLM.init(config, config.seed);
  const optimizer = new AdamW(model.params, config);
  const batch = makeBatch(config, config.seed);
  const sides: Side[] = ['before', 'after'];
  for (let i = 0; i < 2; i++) {
    for (const side of sides) {
      use(side);
      trainStep(model, batch, config, i, optimizer); // warm-up (and wasm tier-up) on both sides
    }
  }
  const steps = Number(values.steps);
  const byName = { before: new Map<string, Agg>(), after: new Map<string, Agg>() };
  const byShape = { before: new Map<string, Agg>(), after: new Map<string, Agg>() };
  const wall = { before: 0, after: 0 };
  // Alternating step by step, so load from elsewhere on the machine hits both sides alike.
  for (let i = 0; i < steps; i++) {
    for (const side of sides) {
      use(side);
      const t0 = performance.now();
      const info = await tf.profile(() => void trainStep(model, batch, config, i + 2, optimizer));
      wall[side] += performance.now() - t0;
      for (const k of info.kernels) {
        const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
        add(byName[side], k.name === 'unnamed scope' ? 'customGrad wrapper' : k.name, ms);
        if (k.name === 'BatchMatMul') add(byShape[side], k.inputShapes.map((sh) => `[${sh}]`).join(' x '), ms);
      }
    }
  }
  use('after');
  const names = [...new Set([...byName.before.keys(), ...byName.after.keys()])];
  const ms = (side: Side, name: string): number => (byName[side].get(name)?.ms ?? 0) / steps;
  const calls = (side: Side, name: string): number => (byName[side].get(name)?.calls ?? 0) / steps;
  names.sort((a, b) => Math.max(ms('before', b), ms('after', b)) - Math.max(ms('before', a), ms('after', a)));
  console.log(
    `${values.preset} on wasm, ${values.compare}, ms per step (profiled, ${steps} steps each, alternating), load ${loadavg()[0].toFixed(2)}`,
  );
  console.log(`| kernel | before ms (calls) | after ms (calls) |\n|---|---:|---:|`);
  console.log(`| **step wall time** | ${(wall.before / steps).toFixed(1)} | ${(wall.after / steps).toFixed(1)} |`);
  for (const n of names) {
    const cell = (side: Side): string => (calls(side, n) === 0 ? '-' : `${ms(side, n).toFixed(1)} (${calls(side, n)})`);
    console.log(`| ${n} | ${cell('before')} | ${cell('after')} |`);
  }
  console.log('\nBatchMatMul by input shapes, ms per step: before, after (calls)');
  for (const [shape, a] of [...byShape.after].sort((x, y) => y[1].ms - x[1].ms)) {
    const was = ((byShape.before.get(shape)?.ms ?? 0) / steps).toFixed(2);
    console.log(
      `${was.padStart(8)} ${(a.ms / steps).toFixed(2).padStart(8)} ms ${String(a.calls / steps).padStart(4)}x  ${shape}`,
    );
  }
  optimizer.dispose();
  model.dispose();
}

void main();
