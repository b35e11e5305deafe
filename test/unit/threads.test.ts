// Our wasm matmul split over a helper thread (src/core/kernels/threads.ts): the same bits as on
// one thread for every way a product is split (rows, transposed operands, batch items, broadcast
// operands, odd sizes), a whole training step likewise, in place on tfjs's shared heap (also after
// it grew), and the thread count is reported (one thread where the heap is not shared).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '../../src/core/backend';
import { steelKernelStatus, steelSharedModule } from '../../src/core/kernels/steel';
import { fusedCausalAttention } from '../../src/core/kernels/fused';
import { setSteelThreads, steelThreadsReady, steelThreadsStats } from '../../src/core/kernels/threads';
import { SteelLM } from '../../src/core/model/gpt';
import { AdamW } from '../../src/core/train/adamw';
import { Rng } from '../../src/core/rng';
import { PRESETS } from '../../src/shared/config';
import { makeBatch, trainStep } from '../golden/make-fixtures';

const missing = !steelKernelStatus().available
  ? 'steel-kernels.wasm not built'
  : steelSharedModule().module === null
    ? 'steel-kernels-mt.wasm not built'
    : '';

function randn(rng: Rng, shape: number[]): Float32Array {
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
}

/** [a shape, b shape, transposeA, transposeB] */
const CASES: [number[], number[], boolean, boolean][] = [
  [[37, 13], [13, 5], false, false], // rows split with a remainder, partial tiles
  [[13, 37], [13, 21], true, false], // transposed A (copied whole)
  [[40, 300], [19, 300], false, true], // transposed B, K past one 256-deep block
  [[3, 20, 7], [7, 9], false, false], // batch folded into rows
  [[5, 6, 11], [5, 11, 4], false, false], // batched both sides, odd batch
  [[5, 11, 6], [5, 4, 11], true, true], // batched both sides, both transposed
  [[6, 11], [4, 11, 3], false, false], // unbatched A against batched B (copied once)
  [[4, 11, 6], [11, 3], true, false], // transposed batched A against one B (not folded)
  [[20, 50], [50, 301], false, false], // columns split (M < N), a partial last panel
  [[50, 20], [50, 133], true, false], // columns split, transposed A (a weight gradient)
  [[24, 40], [77, 40], false, true], // columns split, transposed B
];

function product(aData: Float32Array, bData: Float32Array, c: (typeof CASES)[number]): Float32Array {
  return tf.tidy(() =>
    Float32Array.from(tf.matMul(tf.tensor(aData, c[0]), tf.tensor(bData, c[1]), c[2], c[3]).dataSync()),
  );
}

describe('wasm matmul on 2 threads', { skip: missing || undefined }, () => {
  before(async () => {
    await selectBackend('wasm', { threads: 2 });
    setSteelThreads(2, { minMacs: 1 });
    assert.ok(await steelThreadsReady(), 'the helper thread started');
  });

  after(() => {
    setSteelThreads(2);
  });

  for (const c of CASES) {
    test(`a[${c[0]}] b[${c[1]}] tA=${c[2]} tB=${c[3]}: bit-identical to one thread, and split`, () => {
      const rng = new Rng(c[0].length * 100 + c[0][0] + c[1][c[1].length - 1]);
      const aData = randn(rng, c[0]);
      const bData = randn(rng, c[1]);
      setSteelThreads(1);
      const one = product(aData, bData, c);
      setSteelThreads(2, { minMacs: 1 });
      const splitsBefore = steelThreadsStats().split;
      const two = product(aData, bData, c);
      assert.equal(steelThreadsStats().split, splitsBefore + 1, 'the product was split');
      assert.equal(two.length, one.length);
      const firstDiff = one.findIndex((v, i) => !Object.is(v, two[i]));
      assert.equal(firstDiff, -1, `first difference at ${firstDiff}`);
    });
  }

  test('chunks that no helper claimed are computed by the main thread, with the same bits', () => {
    const c = CASES[4];
    const rng = new Rng(77);
    const [aData, bData] = [randn(rng, c[0]), randn(rng, c[1])];
    setSteelThreads(1);
    const one = product(aData, bData, c);
    setSteelThreads(2, { minMacs: 1, wakeHelpers: false });
    const before = steelThreadsStats();
    const two = product(aData, bData, c);
    const after = steelThreadsStats();
    setSteelThreads(2, { minMacs: 1 });
    assert.equal(after.helperChunks, before.helperChunks);
    assert.ok(after.mainChunks > before.mainChunks);
    assert.deepEqual(two, one);
    // The helpers still serve the next product after one they slept through.
    const again = product(aData, bData, c);
    assert.ok(
      steelThreadsStats().helperChunks > after.helperChunks || steelThreadsStats().mainChunks > after.mainChunks,
    );
    assert.deepEqual(again, one);
  });

  test("the helpers compute in place on tfjs's heap, which is shared memory, also after it grew", () => {
    const wasm = (tf.backend() as unknown as { wasm: { wasmMemory?: { buffer: ArrayBufferLike }; HEAPU8: Uint8Array } })
      .wasm;
    assert.ok(wasm.HEAPU8.buffer instanceof SharedArrayBuffer, 'tfjs runs its threaded-simd build (a shared heap)');
    assert.ok(steelThreadsStats().inPlace, "the helpers' memory is tfjs's heap");
    const c: (typeof CASES)[number] = [[300, 64], [64, 40], false, false];
    const rng = new Rng(5);
    const [aData, bData] = [randn(rng, c[0]), randn(rng, c[1])];
    const size = wasm.wasmMemory?.buffer.byteLength ?? 0;
    // Grown after the helpers started: the operands and the result lie past the heap they first saw.
    const pad = tf.zeros([(size + (32 << 20)) / 4]);
    try {
      assert.ok((wasm.wasmMemory?.buffer.byteLength ?? 0) > size, 'the heap grew');
      setSteelThreads(1);
      const one = product(aData, bData, c);
      setSteelThreads(2, { minMacs: 1 });
      // The helper may be slow to wake on a busy machine: a few tries until it computed a chunk.
      for (let i = 0; i < 20; i++) {
        const before = steelThreadsStats().helperChunks;
        const two = product(aData, bData, c);
        assert.deepEqual(two, one);
        if (steelThreadsStats().helperChunks > before) return;
      }
      assert.fail('the helper computed no chunk in 20 products');
    } finally {
      pad.dispose();
    }
  });

  test('causal attention split by batch items: the same bits forward and backward on 1 and 2 threads', () => {
    const [b, t, nh, nkv, hd] = [5, 40, 4, 2, 16]; // odd batch: uneven parts
    const rng = new Rng(21);
    const data = [
      randn(rng, [b * t, nh * hd]),
      randn(rng, [b * t, nkv * hd]),
      randn(rng, [b * t, nkv * hd]),
      randn(rng, [b * t, nh * hd]),
    ];
    const run = (threads: number): Float32Array[] => {
      setSteelThreads(threads);
      return tf.tidy(() => {
        const [q, k, v] = [
          tf.tensor2d(data[0], [b * t, nh * hd]),
          tf.tensor2d(data[1], [b * t, nkv * hd]),
          tf.tensor2d(data[2], [b * t, nkv * hd]),
        ];
        const attend = (qs: tf.Tensor, ks: tf.Tensor, vs: tf.Tensor): tf.Tensor => {
          const y = fusedCausalAttention(qs as tf.Tensor2D, ks as tf.Tensor2D, vs as tf.Tensor2D, {
            batch: b,
            nh,
            nkv,
            hd,
          });
          if (y === null) throw new Error('fused attention did not run');
          return y;
        };
        const grads = tf.grads((qs: tf.Tensor, ks: tf.Tensor, vs: tf.Tensor) =>
          tf.sum(tf.mul(attend(qs, ks, vs), tf.tensor2d(data[3], [b * t, nh * hd]))),
        )([q, k, v]);
        return [attend(q, k, v), ...grads].map((x) => Float32Array.from(x.dataSync()));
      });
    };
    const before = steelThreadsStats();
    const two = run(2);
    assert.ok(steelThreadsStats().helperChunks > before.helperChunks, 'the helper computed some batch items');
    const one = run(1);
    one.forEach((x, i) =>
      assert.ok(
        x.every((v, j) => Object.is(v, two[i][j])),
        `output ${i}`,
      ),
    );
  });

  test('two training steps of tiny: the same loss, gradient norm and weights on 1 and 2 threads', () => {
    const config = { ...PRESETS.tiny, batch_size: 2, seq_len: 64 };
    const run = (threads: number): { log: number[]; weights: Float32Array[] } => {
      setSteelThreads(threads);
      const model = SteelLM.init(config, config.seed);
      const optimizer = new AdamW(model.params, config);
      const batch = makeBatch(config, config.seed);
      const log = [0, 1].flatMap((step) => Object.values(trainStep(model, batch, config, step, optimizer)));
      const weights = [...model.params.values()].map((p) => Float32Array.from(p.dataSync()));
      optimizer.dispose();
      model.dispose();
      return { log, weights };
    };
    const before = steelThreadsStats();
    const two = run(2);
    assert.ok(steelThreadsStats().split > before.split, 'some products of the step were split');
    assert.ok(steelThreadsStats().helperChunks > before.helperChunks, 'the helper computed some chunks');
    const one = run(1);
    assert.deepEqual(two.log, one.log);
    one.weights.forEach((w, i) =>
      assert.ok(
        w.every((v, j) => Object.is(v, two.weights[i][j])),
        `weights ${i}`,
      ),
    );
  });

  test('the backend choice names the thread count; STEELSCOPE_THREADS=1 is honoured', async () => {
    const choice = await selectBackend('wasm', { threads: 2 });
    assert.match(choice.kernels ?? '', /SIMD kernels[^,]*, 2 threads/);
    const code = "require('./src/core/backend').selectBackend('wasm').then((c) => console.log(c.kernels))";
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
      env: { ...process.env, STEELSCOPE_THREADS: '1' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /SIMD kernels[^,]*, 1 thread\b/);
  });

  test('where tfjs heap is not shared (STEELSCOPE_SHARED_HEAP=0) products run on one thread, which the note says, and match', () => {
    const code = `
      const tf = require('@tensorflow/tfjs-core');
      const { selectBackend } = require('./src/core/backend');
      (async () => {
        const choice = await selectBackend('wasm', { threads: 2 });
        const { steelThreadsStats } = require('./src/core/kernels/threads');
        const a = tf.randomNormal([300, 200], 0, 1, 'float32', 1), b = tf.randomNormal([200, 150], 0, 1, 'float32', 2);
        const ours = tf.matMul(a, b).dataSync();
        const shared = tf.backend().wasm.HEAPU8.buffer instanceof SharedArrayBuffer;
        await tf.setBackend('cpu');
        const ref = tf.matMul(tf.tensor(a.dataSync(), a.shape), tf.tensor(b.dataSync(), b.shape)).dataSync();
        let worst = 0;
        for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours[i] - ref[i]) / (1 + Math.abs(ref[i])));
        console.log(JSON.stringify({ kernels: choice.kernels, worst, shared, split: steelThreadsStats().split }));
      })();`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
      env: { ...process.env, STEELSCOPE_SHARED_HEAP: '0' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as {
      kernels: string;
      worst: number;
      shared: boolean;
      split: number;
    };
    assert.match(out.kernels, /SIMD kernels[^,]*, 1 thread \(tfjs heap not shared: STEELSCOPE_SHARED_HEAP=0\)/);
    assert.equal(out.shared, false);
    assert.equal(out.split, 0);
    assert.ok(out.worst < 1e-4, `differs from cpu by ${out.worst}`);
  });

  test(
    'with fused multiply-add off (STEELSCOPE_FMA=0) the plain build runs, says so, and matches cpu',
    { skip: steelKernelStatus().fma ? undefined : 'the fma build is not in use here' },
    () => {
      // The fma build is the one every other test here exercises; this runs the plain one in a child.
      const code = `
      const tf = require('@tensorflow/tfjs-core');
      const { selectBackend } = require('./src/core/backend');
      (async () => {
        const choice = await selectBackend('wasm', { threads: 2 });
        const { steelThreadsReady } = require('./src/core/kernels/threads');
        await steelThreadsReady();
        const a = tf.randomNormal([300, 200], 0, 1, 'float32', 1), b = tf.randomNormal([200, 150], 0, 1, 'float32', 2);
        const ours = tf.matMul(a, b, false, false).dataSync();
        await tf.setBackend('cpu');
        const ref = tf.matMul(tf.tensor(a.dataSync(), a.shape), tf.tensor(b.dataSync(), b.shape)).dataSync();
        let worst = 0;
        for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ours[i] - ref[i]) / (1 + Math.abs(ref[i])));
        console.log(JSON.stringify({ kernels: choice.kernels, worst }));
      })();`;
      const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
        env: { ...process.env, STEELSCOPE_FMA: '0' },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { kernels: string; worst: number };
      assert.match(out.kernels, /fused multiply-add off \(STEELSCOPE_FMA=0\)\), 2 threads/);
      assert.ok(out.worst < 1e-4, `plain build differs from cpu by ${out.worst}`);
    },
  );
});
