// Numeric comparisons shared by the kernel, model and golden tests.
import assert from 'node:assert/strict';
import type { Rng } from '../src/core/rng';

/**
 * max |a - e| / max |e| over the whole array: a relative error that stays meaningful when some
 * expected values are near zero (an elementwise ratio would blow up there).
 */
export function maxRelDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, 'arrays of different length');
  let diff = 0;
  let scale = 1e-30;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

/** Standard-normal values (times `scale`) for a tensor of `shape`, from a seeded Rng. */
export function randn(rng: Rng, shape: readonly number[], scale = 1): Float32Array {
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * scale;
  return out;
}
