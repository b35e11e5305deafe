// Finding PyTorch for the torch engine: what people are shown, and why nothing was found.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeTorch, findTorch, type TorchFound } from '../../src/shared/node/python';

const found = (over: Partial<TorchFound>): TorchFound => ({
  ok: true,
  python: '3.11.2',
  executable: '/usr/bin/python3',
  torch: '2.5.1',
  cuda: null,
  gpus: [],
  mps: false,
  ...over,
});

test('describeTorch names the torch, the CUDA and the GPUs counted by kind', () => {
  const gpus = [...Array(8).fill('NVIDIA H100 80GB HBM3')];
  assert.equal(describeTorch(found({ cuda: '12.4', gpus })), 'PyTorch 2.5.1 · CUDA 12.4 · 8 × H100 80GB HBM3');
  assert.equal(
    describeTorch(found({ cuda: '12.1', gpus: ['NVIDIA A100', 'NVIDIA L4', 'NVIDIA A100'] })),
    'PyTorch 2.5.1 · CUDA 12.1 · 2 × A100, 1 × L4',
  );
  assert.equal(describeTorch(found({ torch: '1.13.0' })), 'PyTorch 1.13.0 · CPU');
  assert.equal(describeTorch(found({ mps: true })), 'PyTorch 2.5.1 · MPS');
});

test('a named interpreter that cannot run is the only one tried, and the reason says what to install', () => {
  const result = findTorch('/nonexistent/python3');
  assert.ok('reason' in result);
  assert.match(result.reason, /tried \/nonexistent\/python3 \(cannot be run\)\. Install PyTorch/);
});
