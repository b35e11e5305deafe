import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EmaCheckpoints,
  downsample,
  emptyMarkers,
  emptyPoints,
  isSchedule,
  lookupByStep,
  lowerBound,
  rowRange,
  smooth,
  strideFor,
  upperBound,
  type Markers,
  type Points,
} from '../../src/shared/series';

const close = (a: number, b: number, eps = 1e-12) =>
  assert.ok(Math.abs(a - b) <= eps * Math.max(1, Math.abs(b)), `${a} vs ${b}`);

test('smoothing follows TensorBoard: last = last*w + (1-w)*v, debiased by 1 - w^n', () => {
  // By hand, w = 0.5 over 1, 2, 3:
  //   n=1: last = 0.5            / (1 - 0.5)   = 1
  //   n=2: last = 0.25 + 1 = 1.25 / (1 - 0.25)  = 5/3
  //   n=3: last = 0.625 + 1.5 = 2.125 / (1 - 0.125) = 17/7
  const s = smooth([1, 2, 3], 0.5);
  close(s[0], 1);
  close(s[1], 5 / 3);
  close(s[2], 17 / 7);
  // w = 0.9 over 10, 0: n=1 -> 10; n=2: last = 0.9 + 0 = 0.9 ... (0.9*1 + 0.1*0) = 0.9, debias 0.19 -> 0.9/0.19
  const t = smooth([10, 0], 0.9);
  close(t[0], 10);
  close(t[1], 0.9 / 0.19);
});

test('a constant series stays constant at any weight', () => {
  const c = new Array(1000).fill(0.1234567);
  for (const w of [0, 0.1, 0.5, 0.9, 0.99, 0.999, 1]) {
    const s = smooth(c, w);
    for (let i = 0; i < c.length; i++) assert.equal(s[i], c[i], `w=${w} i=${i}`);
  }
});

test('weight 0 returns the raw series', () => {
  const raw = [3, 1, 4, 1, 5, 9, 2, 6, NaN, Infinity];
  assert.deepEqual([...smooth(raw, 0)], raw);
});

test('non-finite points are skipped by the average and kept as non-finite', () => {
  const s = smooth([1, NaN, 2, Infinity, 3, -Infinity], 0.5);
  close(s[0], 1);
  assert.ok(Number.isNaN(s[1]));
  close(s[2], 5 / 3); // as if NaN were not there
  assert.equal(s[3], Infinity);
  close(s[4], 17 / 7);
  assert.equal(s[5], -Infinity);
});

test('EMA checkpoints smooth any row range exactly like a full pass, also after a rewrite', () => {
  const n = 50_000;
  const v = Float64Array.from({ length: n }, (_, i) => Math.sin(i / 100) + (i % 7 === 0 ? NaN : 0));
  const full = smooth(v, 0.8);
  const cp = new EmaCheckpoints(0.8, 1000);
  for (const [lo, hi] of [
    [0, n],
    [12_345, 23_456],
    [0, 10],
    [49_990, n],
    [999, 1001],
  ]) {
    const part = cp.smoothRange(v, lo, hi);
    for (let i = lo; i < hi; i++)
      assert.ok(Object.is(part[i - lo], full[i]) || Math.abs(part[i - lo] - full[i]) < 1e-12, `row ${i}`);
  }
  for (let i = 20_000; i < n; i++) v[i] = 5; // a resume rewrote the tail
  cp.invalidateFrom(20_000);
  const again = smooth(v, 0.8);
  const part = cp.smoothRange(v, 30_000, n);
  for (let i = 30_000; i < n; i++) close(part[i - 30_000], again[i]);
});

function ds(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  maxPoints: number,
  lo = 0,
  hi = y.length,
): { p: Points; m: Markers; stride: number } {
  const p = emptyPoints();
  const m = emptyMarkers();
  const stride = strideFor(hi - lo, maxPoints);
  downsample({ x: { values: x, offset: 0 }, y, lo, hi, stride }, p, m);
  return { p, m, stride };
}

test('downsampling keeps global and per-bucket extremes, first and last points', () => {
  const n = 1_000_000;
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const x = Float64Array.from({ length: n }, (_, i) => i);
  const y = Float64Array.from({ length: n }, () => rand());
  y[123_457] = -5;
  y[777_777] = 9;
  const { p, stride } = ds(x, y, 2000);
  assert.ok(p.x.length <= 2000, `${p.x.length} points`);
  assert.ok(p.x.length > 1000);
  assert.equal(
    p.n.reduce((a, b) => a + b, 0),
    p.x.length,
  );
  assert.equal(Math.min(...p.y), -5);
  assert.equal(Math.max(...p.y), 9);
  assert.ok(p.x.includes(123_457) && p.x.includes(777_777));
  assert.equal(p.x[0], 0);
  assert.equal(p.y[0], y[0]);
  assert.equal(p.x.at(-1), n - 1);
  assert.equal(p.y.at(-1), y[n - 1]);
  // every bucket's min and max are among its points, in x order
  let k = 0;
  for (let b = 0; b < p.n.length; b++) {
    const xs = p.x.slice(k, k + p.n[b]);
    const ys = p.y.slice(k, k + p.n[b]);
    k += p.n[b];
    let min = Infinity,
      max = -Infinity;
    for (let i = b * stride; i < Math.min(n, (b + 1) * stride); i++) {
      min = Math.min(min, y[i]);
      max = Math.max(max, y[i]);
    }
    assert.ok(ys.includes(min) && ys.includes(max), `bucket ${b}`);
    assert.deepEqual(
      xs,
      [...xs].sort((a, c) => a - c),
    );
  }
});

test('a short series comes back unchanged', () => {
  const x = [0, 1, 2, 3, 4];
  const y = [5, 4, 3, 2, 1];
  const { p, m } = ds(x, y, 2000);
  assert.deepEqual(p.x, x);
  assert.deepEqual(p.y, y);
  assert.equal(m.x.length, 0);
});

test('non-finite points become markers, never points, never dropped', () => {
  const n = 100_000;
  const x = Float64Array.from({ length: n }, (_, i) => i * 10);
  const y = Float64Array.from({ length: n }, (_, i) => i);
  y[5] = NaN;
  y[50_000] = Infinity;
  y[99_999] = -Infinity;
  const { p, m } = ds(x, y, 2000);
  assert.ok(p.y.every(Number.isFinite));
  assert.deepEqual(m.x, [50, 500_000, 999_990]);
  assert.deepEqual(m.v, ['NaN', 'Infinity', '-Infinity']);
  assert.deepEqual(m.step, [5, 50_000, 99_999]);
  const short = ds([0, 1, 2], [1, NaN, 3], 2000);
  assert.deepEqual(short.p.x, [0, 2]);
  assert.deepEqual(short.m.x, [1]);
});

test('with loggedNaN given, only logged NaN rows become markers; other NaN rows are gaps', () => {
  const y = [1, NaN, 3, NaN, 5];
  const p = emptyPoints();
  const m = emptyMarkers();
  downsample({ x: { values: [0, 1, 2, 3, 4], offset: 0 }, y, lo: 0, hi: 5, stride: 1, loggedNaN: new Set([3]) }, p, m);
  assert.deepEqual(p.x, [0, 2, 4]);
  assert.deepEqual(m.x, [3]);
  assert.deepEqual(m.v, ['NaN']);
});

test('a tail re-sent from a bucket equals the same buckets of a full pass', () => {
  const n = 30_000;
  const x = Float64Array.from({ length: n }, (_, i) => i);
  const y = Float64Array.from({ length: n }, (_, i) => Math.cos(i));
  const stride = strideFor(n, 2000);
  const full = emptyPoints();
  downsample({ x: { values: x, offset: 0 }, y, lo: 0, hi: n, stride }, full);
  const tail = emptyPoints();
  downsample({ x: { values: x, offset: 0 }, y, lo: 0, hi: n, stride, fromBucket: 100 }, tail);
  const skip = full.n.slice(0, 100).reduce((a, b) => a + b, 0);
  assert.deepEqual(tail.x, full.x.slice(skip));
  assert.deepEqual(tail.n, full.n.slice(100));
});

test('strideFor: 1 while the rows fit, then a power of two', () => {
  assert.equal(strideFor(2000, 2000), 1);
  assert.equal(strideFor(2001, 2000), 8);
  assert.equal(strideFor(1_000_000, 2000), 2048);
});

test('range queries: bounds, widened row ranges, offsets, unsorted columns', () => {
  const a = [0, 10, 20, 30, 40, 50];
  assert.equal(lowerBound(a, a.length, 20), 2);
  assert.equal(lowerBound(a, a.length, 21), 3);
  assert.equal(upperBound(a, a.length, 20), 3);
  assert.equal(lowerBound(a, a.length, 99), 6);
  assert.deepEqual(rowRange({ values: a, offset: 0 }, a.length, 15, 35), [1, 5]);
  assert.deepEqual(rowRange({ values: a, offset: 0 }, a.length, 0, 50), [0, 6]);
  assert.deepEqual(rowRange({ values: a, offset: 0 }, a.length, 60, 70), [6, 6]);
  assert.deepEqual(rowRange({ values: a, offset: 10 }, a.length, 5, 25), [1, 5]); // x = a - 10
  assert.deepEqual(rowRange({ values: a, offset: 0 }, 3, 0, 100), [0, 3]); // only `length` rows count
  const unsorted = [0, 10, 5, 30, 40];
  assert.deepEqual(rowRange({ values: unsorted, offset: 0 }, 5, 8, 35), [0, 5]);
});

test('lookupByStep takes the last source row at or before each step', () => {
  const out = lookupByStep([1, 2, 3, 10], [100, 200, 300, 1000], 4, [0, 2, 5, 10, 11]);
  assert.ok(Number.isNaN(out[0]));
  assert.deepEqual([...out.slice(1)], [200, 300, 1000, 1000]);
});

test('the learning rate, however a writer names it, is a schedule (drawn unsmoothed); other series are not', () => {
  for (const f of ['lr', 'learning_rate', 'lr-AdamW', 'train/lr', 'train/learning_rate', 'LR'])
    assert.equal(isSchedule(f), true, f);
  for (const f of ['loss', 'grad_norm', 'tok_per_s', 'clr', 'lrate', 'slr_decay', 'epoch'])
    assert.equal(isSchedule(f), false, f);
});
