// Same config and seed on both engines: 30 steps of the `tiny` preset on the TensorFlow.js engine
// and on the PyTorch engine see the same batches (shared shards, the same seeded order) from the
// same initial weights, so the losses agree within 1e-3 relative at every step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { poetrySubset, readMetrics, runCli, scratch, trainLosses } from '../helpers';
import { torchFlags, TORCH_SKIP } from '../torch';

const STEPS = 30;
const QUIET = ['eval_every=0', 'sample_every=0', 'checkpoint_every=0'].flatMap((s) => ['--set', s]);

test('tiny, 30 steps: torch losses equal the TF.js engine losses within 1e-3 relative', { skip: TORCH_SKIP }, (t) => {
  const dir = scratch('torch-parity');
  const data = poetrySubset(dir, 1000);
  const common = ['--preset', 'tiny', '--data', data, '--steps', String(STEPS), ...QUIET];
  const tfjs = runCli(['train', ...common, '--run-dir', join(dir, 'tfjs')], 600_000);
  assert.equal(tfjs.code, 0, tfjs.stderr);
  const torch = runCli(['train', ...common, '--run-dir', join(dir, 'torch'), ...torchFlags(1)], 600_000);
  assert.equal(torch.code, 0, torch.stderr);
  const expected = trainLosses(join(dir, 'tfjs'));
  const actual = trainLosses(join(dir, 'torch'));
  assert.equal(actual.size, STEPS);
  let worst = 0;
  for (const [step, loss] of expected) {
    const got = actual.get(step);
    assert.ok(got !== undefined, `torch has no loss for step ${step}`);
    const rel = Math.abs(got - loss) / Math.abs(loss);
    worst = Math.max(worst, rel);
    assert.ok(rel <= 1e-3, `step ${step}: torch ${got} vs tfjs ${loss} (relative ${rel.toExponential(2)})`);
  }
  const last = readMetrics(join(dir, 'torch'))
    .filter((r) => r.kind === 'train')
    .pop();
  t.diagnostic(`largest relative loss difference: ${worst.toExponential(2)}; last torch loss ${String(last?.loss)}`);
});
