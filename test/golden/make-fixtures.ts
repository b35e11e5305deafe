// Regenerates the golden fixtures test/golden/<case>.json from the PyTorch reference:
//   node --import tsx test/golden/make-fixtures.ts [case ...]
// For each case: init SteelLM from its seed on the cpu backend, export weights + config + a
// seeded batch to a temp dir, run `/usr/bin/python3 test/golden/reference.py fixture`, and keep
// its answer with the sha256 of the weights. No weights are committed: test/unit/golden.test.ts
// regenerates them from the seed, and the hash tells it whether the init has changed since.
// Also exports the pieces that test shares (cases, batch, one training step, hashing).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { PRESETS, validateConfig, type TrainConfig } from '../../src/shared/config';
import { Rng } from '../../src/core/rng';
import { selectBackend } from '../../src/core/backend';
import { SteelLM } from '../../src/core/model/gpt';
import { AdamW, globalNorm } from '../../src/core/train/adamw';
import { learningRate } from '../../src/core/train/schedule';
import { encodeTensors } from '../../src/core/train/tensorfile';

export const GOLDEN_DIR = __dirname;
export const PYTHON = '/usr/bin/python3';
export const REFERENCE_PY = join(GOLDEN_DIR, 'reference.py');
export const GOLDEN_FORMAT = 'steelscope.golden/1';
/** AdamW updates per fixture; losses and grad norms are recorded before each and after the last. */
export const ADAMW_STEPS = 4;

export interface GoldenCase {
  name: string;
  note: string;
  config: TrainConfig;
  initSeed: number;
  batchSeed: number;
}

export const CASES: GoldenCase[] = [
  {
    name: 'tiny',
    note: 'PRESETS.tiny with batch_size 2 and seq_len 32 (instead of 8 x 128) so the test stays fast; schedule as in the preset (warmup).',
    config: { ...PRESETS.tiny, batch_size: 2, seq_len: 32 },
    initSeed: 1337,
    batchSeed: 7,
  },
  {
    name: 'gqa-untied',
    note: 'Grouped-query attention (4 heads, 2 kv heads), untied lm_head, vocab 512, d 64, 2 layers; warmup_steps 2 and max_steps 6 so the 4 steps cover warmup and cosine decay.',
    config: {
      ...PRESETS.tiny,
      vocab_size: 512,
      n_embd: 64,
      n_layer: 2,
      n_head: 4,
      n_kv_head: 2,
      intermediate_size: 176,
      tie_embeddings: false,
      batch_size: 2,
      seq_len: 24,
      warmup_steps: 2,
      max_steps: 6,
    },
    initSeed: 42,
    batchSeed: 11,
  },
];

export interface LogitsSummary {
  values: number[];
  row_logsumexp: number[];
}

export interface StepRecord {
  step: number;
  loss: number;
  grad_norm: number;
  lr: number | null;
}

/** What reference.py fixture writes. */
export interface ReferenceOutput {
  torch_version: string;
  positions: [number, number, number][];
  rows: [number, number][];
  logits_initial: LogitsSummary;
  logits_final: LogitsSummary;
  steps: StepRecord[];
}

export interface Fixture {
  format: typeof GOLDEN_FORMAT;
  case: string;
  note: string;
  config: TrainConfig;
  init_seed: number;
  batch_seed: number;
  adamw_steps: number;
  weights_sha256: string;
  params: [string, number[]][];
  x: number[][];
  y: number[][];
  reference: ReferenceOutput;
}

export interface Batch {
  x: number[][];
  y: number[][];
}

/** B rows of T+1 uniform tokens from a seeded Rng; y is x shifted by one. */
export function makeBatch(config: TrainConfig, seed: number): Batch {
  const rng = new Rng(seed);
  const x: number[][] = [];
  const y: number[][] = [];
  for (let b = 0; b < config.batch_size; b++) {
    const row = Array.from({ length: config.seq_len + 1 }, () => rng.int(config.vocab_size));
    x.push(row.slice(0, -1));
    y.push(row.slice(1));
  }
  return { x, y };
}

/** Weights in canonical order with their shapes, as the tensor file stores them. */
export function weightTensors(model: SteelLM): Map<string, { shape: number[]; data: Float32Array }> {
  const data = model.readWeights();
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of model.params) {
    const d = data.get(name);
    if (!d) throw new Error(`readWeights() lacks ${name}`);
    out.set(name, { shape: [...v.shape], data: d });
  }
  return out;
}

/** sha256 of the .bin payload of the exported weights (names and shapes are compared separately). */
export function weightsSha256(model: SteelLM): string {
  const [, bin] = encodeTensors(weightTensors(model));
  return createHash('sha256').update(bin).digest('hex');
}

/** Loss and pre-clip gradient norm at the current weights; applies an AdamW update when `optimizer` is given. */
export function trainStep(
  model: SteelLM,
  batch: Batch,
  config: TrainConfig,
  step: number,
  optimizer?: AdamW,
): { loss: number; gradNorm: number } {
  const x = tf.tensor2d(batch.x, undefined, 'int32');
  const y = tf.tensor2d(batch.y, undefined, 'int32');
  const vars = [...model.params.values()];
  const { value, grads } = tf.variableGrads(() => model.loss(x, y), vars);
  // variableGrads keys by tf variable name, which need not equal the param name: map back.
  const byParam = new Map<string, tf.Tensor>();
  for (const [name, v] of model.params) byParam.set(name, grads[v.name]);
  const loss = value.dataSync()[0];
  const gradNorm = globalNorm(byParam);
  if (optimizer) optimizer.apply(byParam, gradNorm, learningRate(step, config));
  tf.dispose([x, y, value, ...Object.values(grads)]);
  return { loss, gradNorm };
}

function runReference(dir: string, model: SteelLM, c: GoldenCase, batch: Batch): ReferenceOutput {
  const [index, bin] = encodeTensors(weightTensors(model));
  writeFileSync(join(dir, 'weights.json'), index);
  writeFileSync(join(dir, 'weights.bin'), bin);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c.config));
  writeFileSync(join(dir, 'batch.json'), JSON.stringify(batch));
  const out = join(dir, 'out.json');
  const args = [REFERENCE_PY, 'fixture', '--config', join(dir, 'config.json'), '--weights', join(dir, 'weights')];
  args.push('--batch', join(dir, 'batch.json'), '--out', out, '--steps', String(ADAMW_STEPS));
  const r = spawnSync(PYTHON, args, { stdio: 'inherit' });
  if (r.error) throw new Error(`${PYTHON} could not run (${r.error.message}); PyTorch is needed to make fixtures`);
  if (r.status !== 0) throw new Error(`reference.py fixture failed for ${c.name} (exit ${r.status})`);
  return JSON.parse(readFileSync(out, 'utf8')) as ReferenceOutput;
}

function makeFixture(c: GoldenCase): Fixture {
  validateConfig(c.config);
  const model = SteelLM.init(c.config, c.initSeed);
  const batch = makeBatch(c.config, c.batchSeed);
  const dir = mkdtempSync(join(tmpdir(), `steelscope-golden-${c.name}-`));
  try {
    const reference = runReference(dir, model, c, batch);
    const params = [...model.params].map(([name, v]): [string, number[]] => [name, [...v.shape]]);
    return {
      format: GOLDEN_FORMAT,
      case: c.name,
      note: c.note,
      config: c.config,
      init_seed: c.initSeed,
      batch_seed: c.batchSeed,
      adamw_steps: ADAMW_STEPS,
      weights_sha256: weightsSha256(model),
      params,
      ...batch,
      reference,
    };
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function fixturePath(name: string): string {
  return join(GOLDEN_DIR, `${name}.json`);
}

async function main(names: string[]): Promise<void> {
  // The init must not depend on the backend (the test checks its hash on every backend); cpu is the reference.
  await selectBackend('cpu');
  const chosen = names.length > 0 ? CASES.filter((c) => names.includes(c.name)) : CASES;
  if (chosen.length === 0) throw new Error(`no such case; cases: ${CASES.map((c) => c.name).join(', ')}`);
  for (const c of chosen) {
    const fixture = makeFixture(c);
    writeFileSync(fixturePath(c.name), JSON.stringify(fixture) + '\n');
    const s = fixture.reference.steps;
    console.log(
      `${c.name}: loss ${s[0].loss.toFixed(6)} -> ${s[s.length - 1].loss.toFixed(6)}, grad norm ${s[0].grad_norm.toFixed(6)}, sha256 ${fixture.weights_sha256.slice(0, 12)}…`,
    );
  }
}

// Runs only as a script, so the test can import the shared pieces above.
if (process.argv[1]?.endsWith('make-fixtures.ts')) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
