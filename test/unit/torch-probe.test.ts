// Start Training's engine choice rests on the target's torch probe: the first interpreter that
// imports torch wins, a found torch is asked once per session, a missing one is asked again (so
// installing it needs no reload), and "none" says what to install.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TorchProbe } from '../../src/shared/node/python';
import { TorchProbeCache } from '../../src/host/runs/torchProbe';

const found: TorchProbe = {
  ok: true,
  python: '3.11.2',
  executable: '/usr/bin/python3',
  torch: '2.5.1',
  cuda: '12.4',
  gpus: ['NVIDIA H100 80GB HBM3'],
  mps: false,
};
const missing: TorchProbe = {
  ok: false,
  python: '3.12.1',
  executable: '/opt/py/bin/python3',
  error: "ModuleNotFoundError: No module named 'torch'",
};

test('the first interpreter with torch is used and remembered for the session', async () => {
  const asked: string[] = [];
  const cache = new TorchProbeCache(async (python) => {
    asked.push(python);
    return python === 'python3' ? missing : found;
  }, '');
  const first = await cache.search(['python3', '/usr/bin/python3']);
  assert.ok('found' in first && first.found.executable === '/usr/bin/python3');
  await cache.search(['python3', '/usr/bin/python3']);
  assert.deepEqual(asked, ['python3', '/usr/bin/python3']);
});

test('no torch: the reason names each interpreter tried and what to install; asked again next time', async () => {
  let calls = 0;
  const cache = new TorchProbeCache(async (python) => {
    calls++;
    return python === 'python3' ? missing : undefined;
  }, ' on gpu-box');
  const result = await cache.search(['python3', '/usr/bin/python3']);
  assert.ok('reason' in result);
  assert.match(result.reason, /python3 \(Python 3\.12\.1: ModuleNotFoundError/);
  assert.match(result.reason, /\/usr\/bin\/python3 \(cannot be run\)/);
  assert.match(result.reason, /Install PyTorch for Python 3 on gpu-box \(pip install torch/);
  await cache.search(['python3', '/usr/bin/python3']);
  assert.equal(calls, 4);
});
