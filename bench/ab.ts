// A/B of whole training steps with our SIMD kernels (and sharing Identity) on and off,
// interleaved step by step so other load on the machine hits both sides alike.
//   node --import tsx bench/ab.ts [--preset tiny|small] [--steps N]
import { parseArgs } from 'node:util';
import { PRESETS, type PresetName } from '../src/shared/config';
import { selectBackend } from '../src/core/backend';
import { setSteelKernelsEnabled } from '../src/core/kernels/steel';
import { registerWasmKernels } from '../src/core/kernels/wasm';
import { SteelLM } from '../src/core/model/gpt';
import { AdamW } from '../src/core/train/adamw';
import { makeBatch, trainStep } from '../test/golden/make-fixtures';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { preset: { type: 'string', default: 'tiny' }, steps: { type: 'string', default: '8' } } });
  await selectBackend('wasm');
  const config = PRESETS[values.preset as PresetName];
  const model = SteelLM.init(config, config.seed);
  const optimizer = new AdamW(model.params, config);
  const batch = makeBatch(config, config.seed);
  const times: Record<'on' | 'off', number[]> = { on: [], off: [] };
  for (let i = 0; i < 2 + Number(values.steps); i++) {
    for (const side of ['on', 'off'] as const) {
      setSteelKernelsEnabled(side === 'on');
      registerWasmKernels({ sharedIdentity: side === 'on' });
      const t0 = performance.now();
      trainStep(model, batch, config, i, optimizer);
      if (i >= 2) times[side].push(performance.now() - t0);
    }
  }
  const tok = config.batch_size * config.seq_len;
  for (const side of ['on', 'off'] as const) {
    console.log(`${values.preset} steel ${side}: median step ${median(times[side]).toFixed(1)} ms, ${(tok / median(times[side]) * 1000).toFixed(0)} tok/s`);
  }
}

void main();
