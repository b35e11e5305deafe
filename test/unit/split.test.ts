// How a product is shared out between threads (src/core/kernels/split.ts): the parts cover every
// element of C exactly once, each part's A and B pointers match the rows, columns and batch items
// it writes, and items are cut into contiguous, complete ranges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planSplit, shareItems, type MatmulCall } from '../../src/core/kernels/split';

function product(batch: number, m: number, n: number, k: number, transposed: boolean): MatmulCall {
  const [sam, sak] = transposed ? [1, m] : [k, 1];
  return {
    c: 4000,
    a: 8000,
    b: 16000,
    pack: 0,
    batch,
    m,
    n,
    k,
    sam,
    sak,
    sbk: n,
    sbn: 1,
    bsa: m * k,
    bsb: k * n,
    ldc: n,
    bsc: m * n,
  };
}

test('every element of C is written by exactly one part, whose A and B pointers match it', () => {
  const shapes: [number, number, number, number, boolean][] = [
    [1, 1024, 128, 128, false], // rows (M >= N)
    [1, 128, 352, 1024, true], // columns (a weight gradient: few rows, transposed A)
    [1, 37, 301, 5, false], // columns with a partial last panel
    [1, 300, 17, 9, false], // rows with a remainder
    [5, 20, 7, 3, false], // batch items, odd count
    [2, 64, 64, 64, true],
  ];
  for (const [batch, m, n, k, transposed] of shapes) {
    for (const helpers of [1, 2, 3]) {
      const call = product(batch, m, n, k, transposed);
      const split = planSplit(call, helpers, 0);
      assert.ok(split, `${[batch, m, n, k]} is split`);
      const written = new Uint8Array(batch * m * n);
      for (const part of [split.main, ...split.chunks]) {
        const first = (part.c - call.c) / 4;
        const [b0, r0, c0] = [
          Math.floor(first / call.bsc),
          Math.floor((first % call.bsc) / call.ldc),
          first % call.ldc,
        ];
        assert.equal(part.a, call.a + 4 * (b0 * call.bsa + r0 * call.sam), "A starts at the part's first row and item");
        assert.equal(
          part.b,
          call.b + 4 * (b0 * call.bsb + c0 * call.sbn),
          "B starts at the part's first column and item",
        );
        for (let b = 0; b < part.batch; b++) {
          for (let i = 0; i < part.m; i++)
            for (let j = 0; j < part.n; j++) written[first + b * call.bsc + i * call.ldc + j]++;
        }
      }
      assert.ok(
        written.every((x) => x === 1),
        `${[batch, m, n, k]} on ${helpers + 1} threads: each element once`,
      );
    }
  }
});

test('small products and single threads are not split; items are cut into complete, ordered ranges', () => {
  assert.equal(planSplit(product(1, 64, 64, 64, false), 1, 1 << 22), null, 'below the smallest worth splitting');
  assert.equal(planSplit(product(1, 1024, 1024, 64, false), 0, 0), null, 'no helpers');
  for (const [count, helpers] of [
    [8, 1],
    [5, 1],
    [2, 1],
    [9, 3],
  ]) {
    const { main, chunks } = shareItems(count, helpers);
    const ranges = [main, ...chunks];
    assert.equal(ranges[0][0], 0);
    assert.equal(ranges.at(-1)?.[1], count);
    ranges.slice(1).forEach(([start], i) => assert.equal(start, ranges[i][1], 'contiguous'));
    assert.ok(
      chunks.every(([a, b]) => b > a),
      'no empty chunk',
    );
  }
});
