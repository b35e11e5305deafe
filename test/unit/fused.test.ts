// Our fused wasm ops (src/core/kernels/fused.ts on c/fused.c) compute what the composed tfjs ops
// compute on the stock cpu backend, forward and gradients, on random shapes (relative tolerance
// 1e-4). On cpu the model's layers fall back to the composed ops, so the same function run on
// both backends compares fused against stock.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { selectBackend } from '../../src/core/backend';
import {
  fusedCausalAttention,
  fusedCrossEntropy,
  fusedOpsActive,
  fusedRotary,
  fusedSumOfSquares,
  fusedSwiGlu,
} from '../../src/core/kernels/fused';
import { steelKernelStatus } from '../../src/core/kernels/steel';
import { applyRotary, causalMask, rmsNorm, rotaryTables } from '../../src/core/model/layers';
import { Rng } from '../../src/core/rng';
import { AdamW } from '../../src/core/train/adamw';
import { maxRelDiff, randn } from '../numeric';

const TOL = 1e-4;

async function runOn(backend: 'cpu' | 'wasm', fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const result = outs.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(outs);
  return result;
}

async function assertSame(label: string, fn: () => tf.Tensor[]): Promise<void> {
  const expected = await runOn('cpu', fn);
  const actual = await runOn('wasm', fn);
  actual.forEach((a, i) => {
    const rel = maxRelDiff(a, expected[i]);
    assert.ok(rel <= TOL, `${label}: output ${i} relative difference ${rel.toExponential(2)} > ${TOL}`);
  });
}

/** value and gradients of sum(f(inputs) * dy) with respect to every input. */
function withGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: tf.Tensor[], dy: Float32Array): tf.Tensor[] {
  const value = f(...inputs);
  const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(f(...xs), tf.tensor(dy, value.shape))))(inputs);
  return [value, ...grads];
}

describe('fused wasm ops against composed tfjs ops on cpu', () => {
  before(async () => {
    await selectBackend('wasm');
  });

  test('our kernels module is loaded on wasm where it was built', async (t) => {
    const status = steelKernelStatus();
    if (!status.available) {
      t.skip(`steel-kernels.wasm unavailable: ${status.reason}`);
      return;
    }
    await tf.setBackend('wasm');
    assert.equal(fusedOpsActive(), true);
    await tf.setBackend('cpu');
    assert.equal(fusedOpsActive(), false);
  });

  for (const [n, d] of [
    [7, 16],
    [33, 128],
    [5, 12],
    [4, 6],
  ]) {
    test(`rmsNorm [${n}, ${d}] forward and gradients`, async () => {
      const rng = new Rng(n * 100 + d);
      const x = randn(rng, [n, d], 2);
      const w = randn(rng, [d]);
      const dy = randn(rng, [n, d]);
      await assertSame('rmsNorm', () =>
        withGrads(
          (a, b) => rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-6),
          [tf.tensor2d(x, [n, d]), tf.tensor1d(w)],
          dy,
        ),
      );
    });
  }

  for (const [bh, t, hd] of [
    [3, 5, 8],
    [8, 17, 32],
    [2, 4, 64],
    [2, 3, 4],
  ]) {
    test(`applyRotary [${bh}, ${t}, ${hd}] forward and gradient`, async () => {
      const rng = new Rng(bh * 1000 + t * 10 + hd);
      const x = randn(rng, [bh, t, hd]);
      const dy = randn(rng, [bh, t, hd]);
      const { cos, sin } = rotaryTables(t, hd, 1e6, 3);
      await assertSame('applyRotary', () =>
        withGrads(
          (a) => applyRotary(a as tf.Tensor3D, tf.tensor2d(cos, [t, hd]), tf.tensor2d(sin, [t, hd])),
          [tf.tensor3d(x, [bh, t, hd])],
          dy,
        ),
      );
    });
  }

  /** [B*T, n*hd] -> [B*n, T, hd] and back: the composed model's head layout. */
  const splitHeads = (x: tf.Tensor, b: number, t: number, n: number, hd: number): tf.Tensor3D =>
    tf.reshape(tf.transpose(tf.reshape(x, [b, t, n, hd]), [0, 2, 1, 3]), [b * n, t, hd]);
  const mergeHeads = (x: tf.Tensor, b: number, t: number, n: number, hd: number): tf.Tensor2D =>
    tf.reshape(tf.transpose(tf.reshape(x, [b, n, t, hd]), [0, 2, 1, 3]), [b * t, n * hd]);

  for (const [b, t, heads, hd] of [
    [2, 5, 3, 8],
    [1, 40, 2, 16],
  ]) {
    test(`applyRotary on a projection's layout [${b * t}, ${heads}*${hd}] forward and gradient`, async () => {
      const rng = new Rng(b * 31 + t * 7 + heads + hd);
      const x = randn(rng, [b * t, heads * hd]);
      const dy = randn(rng, [b * t, heads * hd]);
      const { cos, sin } = rotaryTables(t, hd, 1e6, 0);
      const rotate = (a: tf.Tensor): tf.Tensor => {
        const [c, s2] = [tf.tensor2d(cos, [t, hd]), tf.tensor2d(sin, [t, hd])];
        return (
          fusedRotary(a as tf.Tensor2D, c, s2) ??
          mergeHeads(applyRotary(splitHeads(a, b, t, heads, hd), c, s2), b, t, heads, hd)
        );
      };
      await assertSame('applyRotary 2-D', () => withGrads(rotate, [tf.tensor2d(x, [b * t, heads * hd])], dy));
    });
  }

  /** softmax(q k^T / sqrt(hd) + mask) v per head from tfjs ops; query head h reads kv head h / (nh / nkv). */
  const composedAttention = (
    q: tf.Tensor,
    k: tf.Tensor,
    v: tf.Tensor,
    b: number,
    t: number,
    nh: number,
    nkv: number,
    hd: number,
  ): tf.Tensor => {
    const kvOf = tf.tensor1d(
      Array.from({ length: nh }, (_, h) => Math.floor(h / (nh / nkv))),
      'int32',
    );
    const expand = (x: tf.Tensor): tf.Tensor3D =>
      tf.reshape(tf.gather(tf.reshape(splitHeads(x, b, t, nkv, hd), [b, nkv, t, hd]), kvOf, 1), [b * nh, t, hd]);
    const scores = tf.add(
      tf.mul(tf.matMul(splitHeads(q, b, t, nh, hd), expand(k), false, true), 1 / Math.sqrt(hd)),
      causalMask(t),
    );
    return mergeHeads(tf.matMul(tf.softmax(scores), expand(v)), b, t, nh, hd);
  };

  // Sequence lengths off the kernel's 32-row causal blocks and off multiples of 4; GQA groups of 1, 2 and 3.
  for (const [b, t, nh, nkv, hd] of [
    [2, 5, 2, 2, 8],
    [1, 37, 4, 2, 16],
    [2, 70, 3, 1, 8],
    [1, 128, 4, 4, 32],
  ]) {
    test(`causal attention B${b} T${t} heads ${nh}/${nkv} hd ${hd} forward and gradients`, async () => {
      const rng = new Rng(b * 1009 + t * 31 + nh * 7 + nkv + hd);
      const q = randn(rng, [b * t, nh * hd], 1.5);
      const k = randn(rng, [b * t, nkv * hd], 1.5);
      const v = randn(rng, [b * t, nkv * hd]);
      const dy = randn(rng, [b * t, nh * hd]);
      const attend = (qs: tf.Tensor, ks: tf.Tensor, vs: tf.Tensor): tf.Tensor =>
        fusedCausalAttention(qs as tf.Tensor2D, ks as tf.Tensor2D, vs as tf.Tensor2D, { batch: b, nh, nkv, hd }) ??
        composedAttention(qs, ks, vs, b, t, nh, nkv, hd);
      const inputs = (): tf.Tensor[] => [
        tf.tensor2d(q, [b * t, nh * hd]),
        tf.tensor2d(k, [b * t, nkv * hd]),
        tf.tensor2d(v, [b * t, nkv * hd]),
      ];
      await assertSame('attention', () => withGrads(attend, inputs(), dy));
    });
  }

  const swiGlu = (g: tf.Tensor, u: tf.Tensor): tf.Tensor =>
    fusedSwiGlu(g as tf.Tensor2D, u as tf.Tensor2D) ?? tf.mul(tf.mul(g, tf.sigmoid(g)), u);

  for (const [n, f] of [
    [9, 20],
    [64, 352],
    [3, 7],
  ]) {
    test(`SwiGLU [${n}, ${f}] forward and gradients`, async () => {
      const rng = new Rng(n * 7 + f);
      const g = randn(rng, [n, f], 4); // wide range: both tails of the sigmoid
      const u = randn(rng, [n, f]);
      const dy = randn(rng, [n, f]);
      await assertSame('swiglu', () => withGrads(swiGlu, [tf.tensor2d(g, [n, f]), tf.tensor2d(u, [n, f])], dy));
    });
  }

  const crossEntropy = (logits: tf.Tensor, targets: tf.Tensor1D): tf.Tensor => {
    const fused = fusedCrossEntropy(logits as tf.Tensor2D, targets);
    if (fused !== null) return fused;
    const picked = tf.cast(tf.oneHot(targets, logits.shape[1] ?? 0), 'float32');
    return tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), picked), -1));
  };

  for (const [n, v] of [
    [6, 12],
    [40, 2048],
    [5, 9],
  ]) {
    test(`cross-entropy [${n}, ${v}] per-row loss and gradient, out-of-range targets`, async () => {
      const rng = new Rng(n + v);
      const logits = randn(rng, [n, v], 3);
      const targets = Int32Array.from({ length: n }, (_, i) => (i === 1 ? v : i === 2 ? -1 : (i * 7919) % v)); // v and -1 pick nothing
      const dy = randn(rng, [n]);
      await assertSame('cross-entropy', () =>
        withGrads((x) => crossEntropy(x, tf.tensor1d(targets, 'int32')), [tf.tensor2d(logits, [n, v])], dy),
      );
    });
  }

  // Same float32 operations in the same order: the fused update matches the composed one exactly.
  test('AdamW update: fused on wasm equals the composed ops on cpu bit for bit', async () => {
    const rng = new Rng(99);
    const shapes = new Map([
      ['w', [6, 8]],
      ['b', [12]],
    ]);
    const init = new Map([...shapes].map(([k, sh]) => [k, randn(rng, sh)]));
    const grads = [0, 1, 2].map(() => new Map([...shapes].map(([k, sh]) => [k, randn(rng, sh, 0.5)])));
    const norms = [0.3, 4.0, 0.9]; // the second one clips
    const train = async (backend: 'cpu' | 'wasm'): Promise<Float32Array[]> => {
      await tf.setBackend(backend);
      const params = new Map([...shapes].map(([k, sh]) => [k, tf.variable(tf.tensor(init.get(k) ?? [], sh))]));
      const opt = new AdamW(params, { beta1: 0.9, beta2: 0.95, adam_eps: 1e-8, weight_decay: 0.05, grad_clip: 1 });
      grads.forEach((g, i) => {
        const gt = new Map([...g].map(([k, v]) => [k, tf.tensor(v, shapes.get(k))]));
        opt.apply(gt, norms[i], 3e-3 * (i + 1));
        tf.dispose([...gt.values()]);
      });
      const out = [...params].flatMap(([name, p]) => [p, opt.slots.get(name)?.m, opt.slots.get(name)?.v]);
      const data = out.map((t) => Float32Array.from(t?.dataSync() ?? []));
      opt.dispose();
      tf.dispose([...params.values()]);
      return data;
    };
    const expected = await train('cpu');
    const actual = await train('wasm');
    actual.forEach((a, i) => assert.deepEqual(a, expected[i], `tensor ${i}`));
  });

  test('sum of squares (the global gradient norm) in float64 over 262,147 elements', async (t) => {
    await tf.setBackend('wasm');
    const rng = new Rng(5);
    const x = randn(rng, [262_147], 0.01);
    const tensor = tf.tensor1d(x);
    const ours = fusedSumOfSquares(tensor);
    tensor.dispose();
    if (ours === null) {
      t.skip('our kernels are not loaded');
      return;
    }
    let exact = 0;
    for (const v of x) exact += Math.fround(v * v); // each square rounded to float32, summed in float64
    assert.ok(Math.abs(ours - exact) / exact < 1e-12, `${ours} vs ${exact}`);
  });

  test('fused ops leave no tensors behind under autodiff', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([8, 16]) as tf.Tensor2D;
    const w = tf.variable(tf.ones([16]));
    const kv = tf.randomNormal([8, 8]); // one kv head of 8 for two query heads of x's 16 columns
    const step = (): void => {
      const { value, grads } = tf.variableGrads(() => tf.sum(rmsNorm(x, w as unknown as tf.Tensor1D, 1e-6)), [w]);
      tf.dispose([value, ...Object.values(grads)]);
      tf.dispose(
        tf.grads((a: tf.Tensor) => tf.sum(crossEntropy(a, tf.tensor1d([1, 2, 3, 4, 5, 6, 7, 0], 'int32'))))([x]),
      );
      const attend = (q: tf.Tensor, k: tf.Tensor): tf.Tensor =>
        fusedCausalAttention(q as tf.Tensor2D, k as tf.Tensor2D, k as tf.Tensor2D, {
          batch: 2,
          nh: 2,
          nkv: 1,
          hd: 8,
        }) ?? q;
      tf.dispose(tf.grads((q: tf.Tensor, k: tf.Tensor) => tf.sum(attend(q, k)))([x, kv]));
    };
    step();
    const before = tf.memory().numTensors;
    step();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([x, w, kv]);
  });
});
