// Our wasm kernels (src/core/kernels/wasm.ts) compute what the stock cpu backend computes:
// BatchMatMul (our SIMD kernel where steel-kernels.wasm is built, else XNNPACK routing) forward
// and gradients over transposes, batch broadcast, batched-both-sides and odd sizes; Tile by rows;
// UnsortedSegmentSum directly and as the gradient of gather; GatherV2 and Add by rows and Sum by
// columns (rows.ts). Relative tolerance 1e-4.
// The fused ops (RMSNorm, SwiGLU, rotary, cross-entropy, AdamW) are tested in fused.test.ts.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { selectBackend } from '../../src/core/backend';
import { registerCpuKernels, registerWasmKernels } from '../../src/core/kernels/wasm';
import { Rng } from '../../src/core/rng';
import { maxRelDiff, randn } from '../numeric';

const TOL = 1e-4;

/** Runs fn on a backend and returns copies of its outputs' values and shapes. */
async function runOn(
  backend: 'cpu' | 'wasm',
  fn: () => tf.Tensor[],
): Promise<{ shape: number[]; data: Float32Array }[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const result = outs.map((t) => ({ shape: [...t.shape], data: Float32Array.from(t.dataSync()) }));
  tf.dispose(outs);
  return result;
}

async function assertSameOnBoth(label: string, fn: () => tf.Tensor[]): Promise<void> {
  const expected = await runOn('cpu', fn);
  const actual = await runOn('wasm', fn);
  actual.forEach((a, i) => {
    assert.deepEqual(a.shape, expected[i].shape, `${label}: output ${i} shape`);
    const rel = maxRelDiff(a.data, expected[i].data);
    assert.ok(rel <= TOL, `${label}: output ${i} relative difference ${rel.toExponential(2)} > ${TOL}`);
  });
}

interface MatMulCase {
  a: number[];
  b: number[];
  tA: boolean;
  tB: boolean;
}

/** tfjs's own BatchMatMul gradient does not reduce broadcast batch dims (it fails on cpu too). */
function sameBatch(c: MatMulCase): boolean {
  return c.a.slice(0, -2).join() === c.b.slice(0, -2).join();
}

const MATMUL_CASES: MatMulCase[] = [];
for (const tA of [false, true]) {
  for (const tB of [false, true]) {
    const shape = (batch: number[], rows: number, cols: number, t: boolean): number[] => [
      ...batch,
      ...(t ? [cols, rows] : [rows, cols]),
    ];
    // 2-D, odd sizes (M=7, K=13, N=5), and a 1-row case
    MATMUL_CASES.push({ a: shape([], 7, 13, tA), b: shape([], 13, 5, tB), tA, tB });
    MATMUL_CASES.push({ a: shape([], 1, 9, tA), b: shape([], 9, 3, tB), tA, tB });
    // batch on the left only (folded into M), rank 3 and rank 4 against a matrix
    MATMUL_CASES.push({ a: shape([3], 5, 6, tA), b: shape([], 6, 4, tB), tA, tB });
    MATMUL_CASES.push({ a: shape([2, 3], 4, 7, tA), b: shape([1], 7, 3, tB), tA, tB });
    // batch on the right only
    MATMUL_CASES.push({ a: shape([], 5, 6, tA), b: shape([3], 6, 4, tB), tA, tB });
    // batched both sides (attention), rank 3 and rank 4
    MATMUL_CASES.push({ a: shape([6], 9, 4, tA), b: shape([6], 4, 9, tB), tA, tB });
    MATMUL_CASES.push({ a: shape([2, 3], 5, 8, tA), b: shape([2, 3], 8, 11, tB), tA, tB });
    // general broadcast (left to the stock kernel)
    MATMUL_CASES.push({ a: shape([2, 1], 3, 4, tA), b: shape([1, 3], 4, 2, tB), tA, tB });
  }
}

describe('wasm kernels against the stock cpu backend', () => {
  before(async () => {
    await selectBackend('wasm');
  });

  test('our kernels are the registered ones and registration is idempotent', () => {
    registerWasmKernels();
    registerWasmKernels();
    assert.notEqual(tf.getKernel('UnsortedSegmentSum', 'wasm'), undefined);
    assert.equal(tf.getKernel('BatchMatMul', 'wasm').kernelName, 'BatchMatMul');
  });

  for (const c of MATMUL_CASES) {
    const label = `matMul a[${c.a}] b[${c.b}] tA=${c.tA} tB=${c.tB}`;
    const withGrads = sameBatch(c);
    test(`${label}: forward${withGrads ? ' and gradients' : ''}`, async () => {
      const rng = new Rng(c.a.length * 1000 + c.a[0] * 37 + c.b[c.b.length - 1]);
      const aData = randn(rng, c.a);
      const bData = randn(rng, c.b);
      const product = (a: tf.Tensor, b: tf.Tensor): tf.Tensor => tf.matMul(a, b, c.tA, c.tB);
      let dyShape: number[] = [];
      await runOn('cpu', () => {
        dyShape = product(tf.tensor(aData, c.a), tf.tensor(bData, c.b)).shape;
        return [];
      });
      const dy = randn(rng, dyShape);
      await assertSameOnBoth(label, () => {
        const a = tf.tensor(aData, c.a);
        const b = tf.tensor(bData, c.b);
        if (!withGrads) return [product(a, b)];
        const grads = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(product(x, y), tf.tensor(dy, dyShape))));
        return [product(a, b), ...grads([a, b])];
      });
    });
  }

  test('a larger product whose heap allocation may grow wasm memory', async () => {
    const rng = new Rng(5);
    const aData = randn(rng, [4, 64, 96]);
    const bData = randn(rng, [4, 96, 80]);
    await assertSameOnBoth('large batched', () => [
      tf.matMul(tf.tensor(aData, [4, 96, 64]), tf.tensor(bData, [4, 80, 96]), true, true),
    ]);
  });

  test('BatchMatMul releases every view and temporary (no leaked tensors or wasm data)', async () => {
    await tf.setBackend('wasm');
    const a = tf.ones([6, 9, 4]);
    const b = tf.ones([6, 9, 4]);
    const dataIds = (): number => tf.engine().backend.numDataIds();
    const product = (tA: boolean, tB: boolean): void => tf.tidy(() => void tf.matMul(a, b, tA, tB));
    product(false, true); // warm-up
    const [tensors, ids] = [tf.memory().numTensors, dataIds()];
    for (let i = 0; i < 3; i++) product(i === 1, i !== 1);
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(dataIds(), ids);
    tf.dispose([a, b]);
  });

  for (const [shape, reps] of [
    [
      [4, 1, 6],
      [1, 3, 1],
    ],
    [
      [2, 3, 5],
      [2, 1, 1],
    ],
    [
      [3, 4],
      [2, 1],
    ],
    [[5], [1]],
    [
      [2, 2, 3],
      [1, 2, 2],
    ],
  ] as const) {
    test(`Tile [${shape}] by [${reps}]: float32, int32 and the gradient`, async () => {
      const rng = new Rng(shape.length * 31 + reps[0]);
      const x = randn(rng, [...shape]);
      const xi = Int32Array.from(x, (v) => Math.round(v * 10));
      const outShape = shape.map((d, i) => d * reps[i]);
      const dy = randn(rng, outShape);
      await assertSameOnBoth('tile', () => {
        const t = tf.tensor(x, [...shape]);
        const grad = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.tile(a, [...reps]), tf.tensor(dy, outShape))))(t);
        return [
          tf.tile(t, [...reps]),
          tf.cast(tf.tile(tf.tensor(xi, [...shape], 'int32'), [...reps]), 'float32'),
          grad,
        ];
      });
    });
  }

  // Rank-1 ids only: cpu's kernel mis-broadcasts rank-2 ids, and gather's gradient flattens them.
  test('UnsortedSegmentSum: float32 and int32, ids out of range dropped', async () => {
    const rng = new Rng(11);
    const x = randn(rng, [10, 3, 2]);
    const ids = Int32Array.from([0, 4, 2, 2, 4, -1, 0, 7, 1, 4]); // -1 and 7 (>= 5) are dropped
    const xi = Int32Array.from({ length: 10 }, (_, i) => i * 3 - 7);
    await assertSameOnBoth('unsortedSegmentSum', () => [
      tf.unsortedSegmentSum(tf.tensor(x, [10, 3, 2]), tf.tensor1d(ids, 'int32'), 5),
      tf.unsortedSegmentSum(
        tf.tensor2d(xi, [5, 2], 'int32'),
        tf.tensor1d(Int32Array.from([1, 1, 0, 2, 1]), 'int32'),
        3,
      ),
    ]);
  });

  test('gather gradient (embedding lookup) goes through UnsortedSegmentSum', async () => {
    const rng = new Rng(12);
    const table = randn(rng, [17, 5]);
    const idx = Int32Array.from([3, 16, 3, 0, 9, 9, 9, 1, 3, 2, 0, 16]);
    const dy = randn(rng, [3, 4, 5]);
    await assertSameOnBoth('gather grad', () => {
      const f = (w: tf.Tensor): tf.Tensor =>
        tf.sum(tf.mul(tf.gather(w, tf.tensor2d(idx, [3, 4], 'int32')), tf.tensor(dy, [3, 4, 5])));
      return [tf.grad(f)(tf.tensor2d(table, [17, 5]))];
    });
  });

  test('GatherV2 by rows (src/core/kernels/rows.ts): float32 and int32 tables, rank-2 ids, axis -rank; other axes stock', async () => {
    const rng = new Rng(14);
    const table = randn(rng, [9, 4, 3]);
    const ti = Int32Array.from(table, (v) => Math.round(v * 100));
    const ids = Int32Array.from([8, 0, 3, 3, 5, 1]);
    await assertSameOnBoth('gather', () => [
      tf.gather(tf.tensor(table, [9, 4, 3]), tf.tensor2d(ids, [2, 3], 'int32')),
      tf.cast(tf.gather(tf.tensor(ti, [9, 4, 3], 'int32'), tf.tensor1d(ids, 'int32'), -3), 'float32'),
      tf.gather(tf.tensor(table, [9, 4, 3]), tf.tensor1d([2, 0], 'int32'), 1),
    ]);
  });

  test('GatherV2 by rows: an index out of range is an error, not a silent read', async () => {
    await tf.setBackend('wasm');
    const before = tf.memory().numTensors;
    assert.throws(
      () => tf.tidy(() => tf.gather(tf.ones([4, 2]), tf.tensor1d([1, 4], 'int32'))),
      /index value 4 is not in \[0, 3\]/,
    );
    assert.equal(tf.memory().numTensors, before);
  });

  test('Sum over every axis but the last (bias gradients) by column sums; other reductions stock', async () => {
    const rng = new Rng(15);
    const x = randn(rng, [6, 5, 7]);
    const dy = randn(rng, [7]);
    await assertSameOnBoth('sum', () => {
      const t = tf.tensor(x, [6, 5, 7]);
      const biasGrad = tf.grad((b: tf.Tensor) => tf.sum(tf.mul(tf.add(t, b), tf.tensor(dy, [7]))))(tf.zeros([7]));
      return [
        tf.sum(t, [0, 1]),
        tf.sum(t, [1, 0], true),
        tf.sum(t, [-3, -2]),
        tf.sum(tf.reshape(t, [30, 7]), 0),
        tf.sum(t),
        tf.sum(t, 2),
        tf.sum(t, [0]),
        biasGrad,
      ];
    });
  });

  test('Add by rows: same shapes (large enough for the helper threads), a bias row, and the stock cases', async () => {
    const rng = new Rng(16);
    const big = randn(rng, [1100, 257]);
    const big2 = randn(rng, [1100, 257]);
    const bias = randn(rng, [257]);
    const small = randn(rng, [3, 5, 4]);
    const dy = randn(rng, [1100, 257]);
    await assertSameOnBoth('add', () => {
      const [x, y, b] = [tf.tensor2d(big, [1100, 257]), tf.tensor2d(big2, [1100, 257]), tf.tensor1d(bias)];
      const s = tf.tensor(small, [3, 5, 4]);
      const grads = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.add(p, q), tf.tensor(dy, [1100, 257]))))([
        x,
        b,
      ]);
      return [
        tf.add(x, y),
        tf.add(x, b),
        tf.add(x, tf.reshape(b, [1, 257])),
        tf.add(s, tf.slice(s, [0, 0, 0], [1, 1, 4])), // a [1, 1, 4] row
        tf.add(tf.slice(s, [0, 0, 0], [1, 5, 4]), s), // broadcast on the left: stock
        tf.add(s, tf.scalar(2)),
        tf.cast(tf.add(tf.cast(s, 'int32'), tf.cast(s, 'int32')), 'float32'),
        ...grads,
      ];
    });
  });

  // Last: from here on the cpu backend runs our UnsortedSegmentSum instead of the stock reference.
  test('cpu UnsortedSegmentSum override matches the stock cpu kernel', async () => {
    const rng = new Rng(13);
    const x = randn(rng, [40, 6]);
    const ids = Int32Array.from({ length: 40 }, (_, i) => ((i * 7) % 23) - 2); // includes -2, -1 and 20 (dropped)
    const xi = Int32Array.from({ length: 40 * 6 }, (_, i) => (i % 11) - 5);
    const fn = (): tf.Tensor[] => [
      tf.unsortedSegmentSum(tf.tensor2d(x, [40, 6]), tf.tensor1d(ids, 'int32'), 20),
      tf.unsortedSegmentSum(tf.tensor2d(xi, [40, 6], 'int32'), tf.tensor1d(ids, 'int32'), 20),
    ];
    const stock = await runOn('cpu', fn);
    registerCpuKernels();
    registerCpuKernels();
    const ours = await runOn('cpu', fn);
    ours.forEach((o, i) => {
      assert.deepEqual(o.shape, stock[i].shape);
      assert.ok(maxRelDiff(o.data, stock[i].data) <= 1e-6, `output ${i}`);
    });
  });
});
