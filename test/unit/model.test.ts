// SteelLM: parameter names, shapes and counts; deterministic init; loss at init; causality;
// rotary relativity; a sanity descent; cpu/wasm agreement; no leaked tensors; weight round trips.
// Exact parity with PyTorch is test/unit/golden.test.ts.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/core/backend';
import { SteelLM, paramShapes } from '../../src/core/model';
import { Rng } from '../../src/core/rng';
import { PRESETS, parameterCount, validateConfig, type TrainConfig } from '../../src/shared/config';
import { maxRelDiff } from '../numeric';

/** vocab 64, d 32, 2 layers, 4 heads, seq 16: fast on cpu. */
const SMALL: TrainConfig = {
  ...PRESETS.tiny,
  vocab_size: 64,
  n_embd: 32,
  n_layer: 2,
  n_head: 4,
  n_kv_head: 4,
  intermediate_size: 48,
  seq_len: 16,
};
const GQA_UNTIED: TrainConfig = { ...SMALL, n_kv_head: 2, tie_embeddings: false };

function batch(config: TrainConfig, seed: number, B: number, T: number): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: B * (T + 1) }, () => rng.int(config.vocab_size));
  const rows = (shift: number): Int32Array =>
    Int32Array.from({ length: B * T }, (_, i) => ids[Math.floor(i / T) * (T + 1) + (i % T) + shift]);
  return { x: tf.tensor2d(rows(0), [B, T], 'int32'), y: tf.tensor2d(rows(1), [B, T], 'int32') };
}

function totalSize(shapes: Map<string, number[]>): number {
  let n = 0;
  for (const s of shapes.values()) n += s.reduce((a, b) => a * b, 1);
  return n;
}

function logitsOf(model: SteelLM, x: tf.Tensor2D, offset = 0): Float32Array {
  const logits = model.forward(x, offset);
  const data = Float32Array.from(logits.dataSync());
  logits.dispose();
  return data;
}

/** Loss and gradients (by parameter name) as plain arrays; disposes everything it made. */
function lossAndGrads(
  model: SteelLM,
  x: tf.Tensor2D,
  y: tf.Tensor2D,
): { loss: number; grads: Map<string, Float32Array> } {
  const { value, grads } = tf.variableGrads(() => model.loss(x, y), [...model.params.values()]);
  const out = new Map<string, Float32Array>();
  for (const [name, v] of model.params) out.set(name, Float32Array.from(grads[v.name].dataSync()));
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out };
}

describe('SteelLM', () => {
  before(async () => {
    await selectBackend('cpu');
  });

  test('parameter count equals parameterCount(config): tiny preset, GQA + untied, steel-1b (shapes only)', () => {
    validateConfig(PRESETS.tiny);
    for (const config of [PRESETS.tiny, GQA_UNTIED]) {
      const model = SteelLM.init(config, 1);
      let n = 0;
      for (const v of model.params.values()) n += v.size;
      assert.equal(n, parameterCount(config));
      model.dispose();
    }
    const big = totalSize(paramShapes(PRESETS['steel-1b']));
    assert.equal(big, parameterCount(PRESETS['steel-1b']));
    assert.ok(Math.abs(big / 1e9 - 1.12) < 0.01, `steel-1b has ${big} parameters`);
  });

  test('parameter names, order and shapes', () => {
    const c: TrainConfig = { ...GQA_UNTIED, n_layer: 1 };
    const [d, q, kv, ff, V] = [32, 32, 16, 48, 64]; // head_dim 8; 2 kv heads
    const expected: [string, number[]][] = [
      ['wte', [V, d]],
      ['h.0.ln_1.weight', [d]],
      ['h.0.attn.q.weight', [d, q]],
      ['h.0.attn.q.bias', [q]],
      ['h.0.attn.k.weight', [d, kv]],
      ['h.0.attn.k.bias', [kv]],
      ['h.0.attn.v.weight', [d, kv]],
      ['h.0.attn.v.bias', [kv]],
      ['h.0.attn.o.weight', [q, d]],
      ['h.0.ln_2.weight', [d]],
      ['h.0.mlp.gate.weight', [d, ff]],
      ['h.0.mlp.up.weight', [d, ff]],
      ['h.0.mlp.down.weight', [ff, d]],
      ['ln_f.weight', [d]],
      ['lm_head.weight', [d, V]],
    ];
    const model = SteelLM.init(c, 3);
    assert.deepEqual([...model.paramShapes()], expected);
    assert.deepEqual(
      [...model.params].map(([n, v]) => [n, v.shape]),
      expected,
    );
    assert.ok(!paramShapes({ ...c, tie_embeddings: true }).has('lm_head.weight'));
    const w = model.readWeights();
    assert.ok(w.get('h.0.attn.q.bias')?.every((x) => x === 0));
    assert.ok(w.get('ln_f.weight')?.every((x) => x === 1));
    model.dispose();
  });

  test('init is deterministic for a seed and identical on cpu and wasm', async () => {
    const a = SteelLM.init(GQA_UNTIED, 42);
    const b = SteelLM.init(GQA_UNTIED, 42);
    const c = SteelLM.init(GQA_UNTIED, 43);
    await selectBackend('wasm');
    const w = SteelLM.init(GQA_UNTIED, 42);
    const [wa, wb, wc, ww] = [a.readWeights(), b.readWeights(), c.readWeights(), w.readWeights()];
    await selectBackend('cpu');
    for (const [name, values] of wa) {
      assert.deepEqual(wb.get(name), values, name);
      assert.deepEqual(ww.get(name), values, `${name} on wasm`);
    }
    assert.notDeepEqual(wc.get('wte'), wa.get('wte'));
    // Residual projections get init_std / sqrt(2 * n_layer).
    const std = (x: Float32Array): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
    assert.ok(Math.abs(std(wa.get('h.0.mlp.gate.weight') as Float32Array) - 0.02) < 0.003);
    assert.ok(Math.abs(std(wa.get('h.0.mlp.down.weight') as Float32Array) - 0.01) < 0.0015);
    [a, b, c, w].forEach((m) => m.dispose());
  });

  test('loss at init is about ln(V)', () => {
    for (const config of [SMALL, GQA_UNTIED]) {
      const model = SteelLM.init(config, 7);
      const { x, y } = batch(config, 1, 2, 16);
      const loss = model.loss(x, y);
      assert.equal(loss.shape.length, 0);
      assert.ok(Math.abs(loss.dataSync()[0] - Math.log(config.vocab_size)) < 0.1, `loss ${loss.dataSync()[0]}`);
      tf.dispose([loss, x, y]);
      model.dispose();
    }
  });

  test('forward is causal: changing token t changes no logits before t', () => {
    const model = SteelLM.init(GQA_UNTIED, 5);
    const { x } = batch(GQA_UNTIED, 2, 2, 12);
    const ids = Int32Array.from(x.dataSync());
    const t = 7;
    ids[t] = (ids[t] + 1) % 64; // row 0, position 7
    ids[12 + 3] = (ids[12 + 3] + 5) % 64; // row 1, position 3
    const x2 = tf.tensor2d(ids, [2, 12], 'int32');
    const [l1, l2] = [logitsOf(model, x), logitsOf(model, x2)];
    const V = 64;
    const row = (l: Float32Array, b: number, from: number, to: number): Float32Array =>
      l.subarray((b * 12 + from) * V, (b * 12 + to) * V);
    assert.deepEqual(row(l2, 0, 0, t), row(l1, 0, 0, t));
    assert.deepEqual(row(l2, 1, 0, 3), row(l1, 1, 0, 3));
    assert.notDeepEqual(row(l2, 0, t, t + 1), row(l1, 0, t, t + 1));
    tf.dispose([x, x2]);
    model.dispose();
  });

  test('rotary positions are relative: a position offset leaves the logits (nearly) unchanged', () => {
    const model = SteelLM.init({ ...SMALL, rope_theta: 100 }, 9);
    const { x } = batch(SMALL, 3, 1, 10);
    const rel = maxRelDiff(logitsOf(model, x, 37), logitsOf(model, x, 0));
    assert.ok(rel < 1e-4, `offset changed logits by ${rel}`);
    x.dispose();
    model.dispose();
  });

  test('a few plain SGD steps on one batch drive the loss down', () => {
    const model = SteelLM.init(SMALL, 11);
    const { x, y } = batch(SMALL, 4, 2, 16);
    const losses: number[] = [];
    for (let step = 0; step < 8; step++) {
      const { value, grads } = tf.variableGrads(() => model.loss(x, y), [...model.params.values()]);
      losses.push(value.dataSync()[0]);
      tf.tidy(() => {
        for (const v of model.params.values()) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.5)));
      });
      tf.dispose([value, ...Object.values(grads)]);
    }
    assert.ok(losses[7] < losses[0] - 0.5, `losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    tf.dispose([x, y]);
    model.dispose();
  });

  test('loss and gradients agree between cpu and wasm (relative 1e-4)', async () => {
    for (const config of [SMALL, GQA_UNTIED]) {
      const model = SteelLM.init(config, 13);
      const { x, y } = batch(config, 5, 3, 16);
      const onCpu = lossAndGrads(model, x, y);
      await selectBackend('wasm');
      const onWasm = lossAndGrads(model, x, y);
      await selectBackend('cpu');
      assert.ok(Math.abs(onWasm.loss - onCpu.loss) / onCpu.loss < 1e-4, `loss ${onWasm.loss} vs ${onCpu.loss}`);
      for (const [name, g] of onCpu.grads) {
        const rel = maxRelDiff(onWasm.grads.get(name) as Float32Array, g);
        assert.ok(rel < 1e-4, `${name}: relative ${rel.toExponential(2)}`);
      }
      tf.dispose([x, y]);
      model.dispose();
    }
  });

  test('no tensors leak across forward + backward steps (cpu and wasm)', async () => {
    for (const backend of ['cpu', 'wasm'] as const) {
      await selectBackend(backend);
      const model = SteelLM.init(GQA_UNTIED, 17);
      const { x, y } = batch(GQA_UNTIED, 6, 2, 16);
      lossAndGrads(model, x, y); // warm-up (backends cache some scalars on first use)
      const before = tf.memory().numTensors;
      for (let i = 0; i < 3; i++) {
        lossAndGrads(model, x, y);
        logitsOf(model, x);
      }
      assert.equal(tf.memory().numTensors, before, backend);
      tf.dispose([x, y]);
      model.dispose();
    }
    await selectBackend('cpu');
  });

  test('init + dispose and fromWeights + dispose leave no tensors behind', () => {
    const before = tf.memory().numTensors;
    const model = SteelLM.init(GQA_UNTIED, 19);
    assert.equal(tf.memory().numTensors, before + model.params.size);
    SteelLM.fromWeights(GQA_UNTIED, model.readWeights()).dispose();
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  test('fromWeights round-trips to identical logits and does not alias the given arrays', () => {
    const model = SteelLM.init(GQA_UNTIED, 19);
    const weights = model.readWeights();
    const copy = SteelLM.fromWeights(GQA_UNTIED, weights);
    const { x } = batch(GQA_UNTIED, 7, 2, 16);
    const expected = logitsOf(model, x);
    assert.deepEqual(logitsOf(copy, x), expected);
    for (const w of weights.values()) w.fill(0);
    assert.deepEqual(logitsOf(copy, x), expected);
    tf.dispose(x);
    model.dispose();
    copy.dispose();
  });

  test('fromWeights names the offending tensor', () => {
    const model = SteelLM.init(SMALL, 23);
    const good = model.readWeights();
    model.dispose();
    const wrongSize = new Map(good).set('h.1.attn.k.weight', new Float32Array(10));
    assert.throws(() => SteelLM.fromWeights(SMALL, wrongSize), /h\.1\.attn\.k\.weight/);
    const missing = new Map(good);
    missing.delete('h.0.mlp.up.weight');
    assert.throws(() => SteelLM.fromWeights(SMALL, missing), /missing tensor "h\.0\.mlp\.up\.weight"/);
    const extra = new Map(good).set('lm_head.weight', new Float32Array(32 * 64));
    assert.throws(() => SteelLM.fromWeights(SMALL, extra), /Unexpected tensor "lm_head\.weight"/);
  });
});
