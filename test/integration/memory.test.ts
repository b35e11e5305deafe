// Every tensor of a training step, an eval and a sample is released: tf.memory() stays flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { applySettings, PRESETS } from '../../src/shared/config';
import { startRun } from '../../src/core/train/session';
import { poetrySubset, scratch, SMALL_SETS, TEST_ENV } from '../helpers';

test('tensor count is flat across training steps, evals, samples and checkpoints', async () => {
  process.env.STEELSCOPE_CACHE = TEST_ENV.STEELSCOPE_CACHE;
  const dir = scratch('memory');
  const sets = SMALL_SETS.filter((a) => a !== '--set').concat([
    'sample_every=3',
    'eval_every=2',
    'checkpoint_every=4',
    'grad_accum=2',
  ]);
  const config = applySettings(PRESETS.tiny, sets);
  const counts: number[] = [];
  const status = await startRun(
    { runDir: join(dir, 'run'), config, data: poetrySubset(dir, 200), backend: 'wasm', steps: 12 },
    { log: () => undefined, stopRequested: () => false, onStep: () => counts.push(tf.memory().numTensors) },
  );
  assert.equal(status, 'finished');
  assert.equal(counts.length, 12);
  assert.ok(
    counts.every((n) => n === counts[0]),
    `tensor counts per step: ${counts.join(', ')}`,
  );
  assert.equal(tf.memory().numTensors, 0, 'model and optimizer are released when the run ends');
});
