import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpikeDetector } from '../../src/core/train/spike';
import { Rng } from '../../src/core/rng';

test('a loss far above its recent window is a spike; noise and the early fall are not', () => {
  const d = new SpikeDetector(6);
  // The first losses fall fast: no window yet, no spike.
  for (const loss of [8, 7, 6.5, 6]) assert.equal(d.observe(loss), undefined);
  const rng = new Rng(5);
  for (let i = 0; i < 60; i++) assert.equal(d.observe(4 + 0.02 * rng.normal()), undefined, `noise at ${i}`);
  const spike = d.observe(9);
  assert.ok(spike && spike.sigmas > 6, 'a jump to 9 is flagged');
  assert.equal(d.observe(NaN), undefined, 'non-finite losses are reported as nan events, not spikes');
});
