import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpikeDetector } from '../../src/core/train/spike';

// Deterministic windows whose mean and standard deviation are known exactly, so each assertion
// sits on one side of the detector's threshold and a changed rule makes one of them fail.
const alternating = (n: number, mean: number, std: number) =>
  Array.from({ length: n }, (_, i) => mean + (i % 2 === 0 ? std : -std));

test('a loss more than `sigmas` standard deviations above the window mean is a spike, and the statistics say so', () => {
  const warmed = () => {
    const d = new SpikeDetector(6);
    for (const loss of alternating(40, 4, 0.1)) assert.equal(d.observe(loss), undefined);
    return d;
  };
  assert.equal(warmed().observe(4 + 5.9 * 0.1), undefined, '5.9 sigmas is below the threshold');
  const spike = warmed().observe(4 + 8 * 0.1);
  assert.ok(spike, '8 sigmas is a spike');
  assert.ok(Math.abs(spike.sigmas - 8) < 0.3, `sigmas ${spike.sigmas}`);
  assert.ok(
    Math.abs(spike.mean - 4) < 0.02 && Math.abs(spike.std - 0.1) < 0.01,
    `mean ${spike.mean}, std ${spike.std}`,
  );
});

test('the window must be warm: a wiggle after a few flat losses is not a spike, the same wiggle after twenty is', () => {
  const cold = new SpikeDetector(6);
  for (let i = 0; i < 19; i++) assert.equal(cold.observe(6), undefined);
  assert.equal(cold.observe(7), undefined, 'nineteen losses are not a window yet');
  const warm = new SpikeDetector(6);
  for (let i = 0; i < 20; i++) warm.observe(6);
  assert.ok(warm.observe(7), 'twenty flat losses are a window; a jump of 1 is far above its floor');
});

test('the fast fall at the start of training never flags, and a loss below the mean is never a spike', () => {
  const d = new SpikeDetector(3);
  for (let step = 0; step < 60; step++)
    assert.equal(d.observe(8 * Math.exp(-step / 15) + 3), undefined, `step ${step}`);
  assert.equal(d.observe(0.5), undefined, 'a sudden drop is not a spike');
});

test('a flat window uses a floor on its spread, so tiny wiggles do not flag; spike_sigma 0 turns detection off', () => {
  const d = new SpikeDetector(6);
  for (let i = 0; i < 30; i++) d.observe(4);
  assert.equal(d.observe(4 + 0.005 * 4), undefined, '5 floors (0.1% of the mean each) above is not 6');
  assert.ok(d.observe(4 + 0.01 * 4), '10 floors above is');
  const off = new SpikeDetector(0);
  for (let i = 0; i < 30; i++) off.observe(4);
  assert.equal(off.observe(100), undefined);
});

test('non-finite losses are nan events, not spikes, and do not join the window', () => {
  const d = new SpikeDetector(6);
  for (const loss of alternating(40, 4, 0.1)) d.observe(loss);
  assert.equal(d.observe(NaN), undefined);
  assert.equal(d.observe(Infinity), undefined);
  assert.ok(d.observe(4 + 8 * 0.1), 'the window is unchanged by the non-finite losses');
});
