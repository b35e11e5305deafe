// Per-kernel time of one training step (forward + backward + norm + AdamW), summed by kernel name
// and, for BatchMatMul, by shape. Kernel times are wall-clock around each kernel on wasm/cpu.
//   node --import tsx bench/profile.ts [--preset tiny|small] [--backend wasm|cpu] [--steps N]
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { PRESETS, type PresetName } from '../src/shared/config';
import { selectBackend, type BackendName } from '../src/core/backend';
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { preset: { type: 'string', default: 'tiny' }, backend: { type: 'string', default: 'wasm' }, steps: { type: 'string', default: '3' } },
  });
  await selectBackend(values.backend as BackendName);
  const config = PRESETS[values.preset as PresetName];
  const model = SteelLM.init(config, config.seed);
  const optimizer = new AdamW(model.params, config);
  const batch = makeBatch(config, config.seed);
  for (let i = 0; i < 2; i++) trainStep(model, batch, config, i, optimizer); // warm-up
  const steps = Number(values.steps);
  const byName = new Map<string, Agg>();
  const byShape = new Map<string, Agg>();
  let wall = 0;
  let kernelTotal = 0;
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    const info = await tf.profile(() => void trainStep(model, batch, config, i + 2, optimizer));
    wall += performance.now() - t0;
    for (const k of info.kernels) {
      const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      kernelTotal += ms;
      add(byName, k.name, ms);
      if (k.name === 'BatchMatMul' || k.name === '_FusedMatMul') add(byShape, `${k.inputShapes.map((s) => `[${s}]`).join('x')} ${JSON.stringify(k.extraInfo ?? '')}`, ms);
    }
  }
  const rows = [...byName].sort((a, b) => b[1].ms - a[1].ms);
  console.log(`${values.preset} on ${tf.getBackend()}: step wall ${(wall / steps).toFixed(1)} ms (profiled), kernels ${(kernelTotal / steps).toFixed(1)} ms`);
  for (const [name, a] of rows) console.log(`${name.padEnd(24)} ${(a.ms / steps).toFixed(2).padStart(8)} ms  ${String(a.calls / steps).padStart(5)} calls`);
  console.log('\nBatchMatMul by input shapes:');
  for (const [shape, a] of [...byShape].sort((x, y) => y[1].ms - x[1].ms).slice(0, 25)) {
    console.log(`${(a.ms / steps).toFixed(2).padStart(8)} ms ${String(a.calls / steps).padStart(4)}x  ${shape}`);
  }
  optimizer.dispose();
  model.dispose();
}

void main();
