// The model core computes what an independent PyTorch implementation computes.
// Fixtures (test/golden/*.json) were made by test/golden/make-fixtures.ts with
// test/golden/reference.py; this test needs neither python nor torch. On every backend it
// regenerates the weights from the seed (their sha256 must match the fixture's), runs the same
// batch, and compares logits, loss and pre-clip grad norm before and after 4 AdamW steps.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/core/backend';
import { SteelLM } from '../../src/core/model/gpt';
import { AdamW } from '../../src/core/train/adamw';
import { learningRate } from '../../src/core/train/schedule';
import { maxRelDiff } from '../numeric';
import {
  CASES,
  GOLDEN_FORMAT,
  fixturePath,
  trainStep,
  weightsSha256,
  type Fixture,
  type LogitsSummary,
} from '../golden/make-fixtures';

const TOL_SCALAR = 1e-4; // loss and grad norm, every step
const TOL_LOGITS = 1e-3; // logits summary (values and row logsumexp)

// cpu and wasm ship with the core; a native backend (tfjs-node[-gpu]) is tested when `auto` finds one.
const BACKENDS = ['cpu', 'wasm'] as const;

/** Largest relative difference per backend per quantity, printed at the end for the report. */
const worst = new Map<string, Map<string, number>>();

function record(backend: string, quantity: string, rel: number): void {
  const row = worst.get(backend) ?? new Map<string, number>();
  row.set(quantity, Math.max(row.get(quantity) ?? 0, rel));
  worst.set(backend, row);
}

function relScalar(actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.max(Math.abs(expected), 1e-12);
}

function loadFixture(name: string): Fixture {
  const path = fixturePath(name);
  assert.ok(existsSync(path), `${path} missing: run node --import tsx test/golden/make-fixtures.ts`);
  const f = JSON.parse(readFileSync(path, 'utf8')) as Fixture;
  assert.equal(f.format, GOLDEN_FORMAT);
  return f;
}

/** The same summary reference.py takes: logits at fixed (b, t, v) and logsumexp of whole rows. */
function summarize(model: SteelLM, f: Fixture): LogitsSummary {
  const [B, T, V] = [f.x.length, f.x[0].length, f.config.vocab_size];
  const logits = tf.tidy(() => model.forward(tf.tensor2d(f.x, [B, T], 'int32')));
  assert.deepEqual(logits.shape, [B, T, V]);
  const data = logits.dataSync() as Float32Array;
  logits.dispose();
  const values = f.reference.positions.map(([b, t, v]) => data[(b * T + t) * V + v]);
  const row_logsumexp = f.reference.rows.map(([b, t]) => {
    const row = data.subarray((b * T + t) * V, (b * T + t + 1) * V);
    const max = row.reduce((m, z) => Math.max(m, z), -Infinity);
    return max + Math.log(row.reduce((s, z) => s + Math.exp(z - max), 0));
  });
  return { values, row_logsumexp };
}

/** Records the difference and, when it is over the tolerance, a line for the failure message. */
function check(backend: string, quantity: string, rel: number, tol: number, what: string, problems: string[]): void {
  record(backend, quantity, rel);
  if (!(rel <= tol)) problems.push(`${what}: relative difference ${rel.toExponential(2)} > ${tol}`);
}

function compareLogits(
  backend: string,
  when: string,
  actual: LogitsSummary,
  expected: LogitsSummary,
  problems: string[],
): void {
  const relValues = maxRelDiff(actual.values, expected.values);
  const relLse = Math.max(...actual.row_logsumexp.map((a, i) => relScalar(a, expected.row_logsumexp[i])));
  check(backend, 'logits', relValues, TOL_LOGITS, `${when} logits`, problems);
  check(backend, 'logsumexp', relLse, TOL_LOGITS, `${when} row logsumexp`, problems);
}

function checkInit(model: SteelLM, f: Fixture): void {
  const params = [...model.params].map(([name, v]) => [name, [...v.shape]]);
  assert.deepEqual(params, f.params, 'parameter names, order or shapes differ from the fixture');
  assert.equal(
    weightsSha256(model),
    f.weights_sha256,
    'init from the seed changed: regenerate the fixtures (make-fixtures.ts)',
  );
}

/** Runs every step before asserting, so the printed maxima cover the whole case even when it fails. */
function runCase(backend: string, f: Fixture): void {
  const model = SteelLM.init(f.config, f.init_seed);
  const optimizer = new AdamW(model.params, f.config);
  const problems: string[] = [];
  try {
    checkInit(model, f);
    compareLogits(backend, 'initial', summarize(model, f), f.reference.logits_initial, problems);
    for (const ref of f.reference.steps) {
      const update = ref.step < f.adamw_steps;
      if (update)
        assert.ok(relScalar(learningRate(ref.step, f.config), ref.lr ?? NaN) < 1e-12, `lr at step ${ref.step}`);
      const { loss, gradNorm } = trainStep(model, f, f.config, ref.step, update ? optimizer : undefined);
      check(
        backend,
        'loss',
        relScalar(loss, ref.loss),
        TOL_SCALAR,
        `step ${ref.step} loss ${loss} vs torch ${ref.loss}`,
        problems,
      );
      const what = `step ${ref.step} grad norm ${gradNorm} vs torch ${ref.grad_norm}`;
      check(backend, 'grad_norm', relScalar(gradNorm, ref.grad_norm), TOL_SCALAR, what, problems);
    }
    compareLogits(
      backend,
      `after ${f.adamw_steps} AdamW steps`,
      summarize(model, f),
      f.reference.logits_final,
      problems,
    );
  } finally {
    optimizer.dispose();
    model.dispose();
  }
  assert.ok(problems.length === 0, `${f.case} on ${backend} differs from PyTorch:\n${problems.join('\n')}`);
}

for (const backend of BACKENDS) {
  describe(`golden parity with PyTorch on ${backend}`, () => {
    for (const c of CASES) {
      test(c.name, async () => {
        const { name } = await selectBackend(backend);
        assert.equal(name, backend);
        assert.equal(tf.getBackend(), backend, `asked for ${backend}, tfjs runs ${tf.getBackend()}`);
        runCase(backend, loadFixture(c.name));
      });
    }
  });
}

describe('golden parity with PyTorch on a native backend, where installed', () => {
  for (const c of CASES) {
    test(c.name, async (t) => {
      const { name } = await selectBackend('auto');
      if (name === 'cpu' || name === 'wasm') return t.skip(`auto picks ${name}: no native backend installed`);
      runCase(name, loadFixture(c.name));
    });
  }
});

after(() => {
  const lines = [...worst].map(([backend, row]) => {
    const cells = [...row].map(([q, rel]) => `${q} ${rel.toExponential(2)}`);
    return `  ${backend.padEnd(6)} ${cells.join(', ')}`;
  });
  console.log(`golden: largest relative difference vs PyTorch per quantity\n${lines.join('\n')}`);
});
