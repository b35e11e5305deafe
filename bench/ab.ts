// A/B of whole training steps, interleaved step by step so other load on the machine hits both
// sides alike:
//   --compare steel    our SIMD kernels (and sharing Identity) on and off (one thread);
//   --compare threads  our kernels on 1 thread against N threads (--threads N, default 2).
//   node --import tsx bench/ab.ts [--preset tiny|small] [--steps N] [--compare steel|threads] [--threads N]
import { parseArgs } from 'node:util';
import { PRESETS, type PresetName } from '../src/shared/config';
import { selectBackend } from '../src/core/backend';
import { setSteelKernelsEnabled } from '../src/core/kernels/steel';
import { setSteelThreads, steelThreadsReady } from '../src/core/kernels/threads';
import { registerWasmKernels } from '../src/core/kernels/wasm';
import { SteelLM } from '../src/core/model/gpt';
import { AdamW } from '../src/core/train/adamw';
import { makeBatch, trainStep } from '../test/golden/make-fixtures';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

type Setter = (side: 'a' | 'b') => void;

function sides(compare: string, threads: number): { labels: Record<'a' | 'b', string>; use: Setter } {
  if (compare === 'threads') {
    return {
      labels: { a: `${threads} threads`, b: '1 thread' },
      use: (side) => setSteelThreads(side === 'a' ? threads : 1),
    };
  }
  const use: Setter = (side) => {
    setSteelThreads(1);
    setSteelKernelsEnabled(side === 'a');
    registerWasmKernels({ sharedIdentity: side === 'a' });
  };
  return { labels: { a: 'steel on', b: 'steel off' }, use };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string', default: 'tiny' },
      steps: { type: 'string', default: '8' },
      compare: { type: 'string', default: 'steel' },
      threads: { type: 'string', default: '2' },
    },
  });
  await selectBackend('wasm');
  const config = PRESETS[values.preset as PresetName];
  const model = SteelLM.init(config, config.seed);
  const optimizer = new AdamW(model.params, config);
  const batch = makeBatch(config, config.seed);
  const { labels, use } = sides(values.compare, Number(values.threads));
  if (values.compare !== 'steel') {
    setSteelThreads(Number(values.threads));
    await steelThreadsReady();
  }
  const times: Record<'a' | 'b', number[]> = { a: [], b: [] };
  for (let i = 0; i < 2 + Number(values.steps); i++) {
    for (const side of ['a', 'b'] as const) {
      use(side);
      const t0 = performance.now();
      trainStep(model, batch, config, i, optimizer);
      if (i >= 2) times[side].push(performance.now() - t0);
    }
  }
  const tok = config.batch_size * config.seq_len;
  for (const side of ['a', 'b'] as const) {
    console.log(
      `${values.preset} ${labels[side]}: median step ${median(times[side]).toFixed(1)} ms (min ${Math.min(...times[side]).toFixed(1)}), ${((tok / median(times[side])) * 1000).toFixed(0)} tok/s`,
    );
  }
  optimizer.dispose();
  model.dispose();
}

void main();
