import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRate } from '../../src/core/train/schedule';

test('schedule: linear warmup, cosine to the floor, flat after', () => {
  const c = { lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, max_steps: 110 };
  assert.ok(Math.abs(learningRate(0, c) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(9, c) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(10, c) - 1e-3) < 1e-12);
  assert.ok(Math.abs(learningRate(60, c) - 5.5e-4) < 1e-12, 'half way is the mean of peak and floor');
  assert.ok(Math.abs(learningRate(110, c) - 1e-4) < 1e-12);
  assert.ok(Math.abs(learningRate(500, c) - 1e-4) < 1e-12);
  for (let s = 10; s < 110; s++)
    assert.ok(learningRate(s + 1, c) <= learningRate(s, c), `monotone after warmup at ${s}`);
});
