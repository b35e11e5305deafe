// The built CLI trains on our own wasm SIMD kernels (dist/steel-kernels*.wasm, compiled by
// `npm run build` with @yowasp/clang), the fused multiply-add build included: it says so at start
// and records it in run.json. Fails where dist lacks the kernels (the trainer would then run on
// tfjs's stock kernels, about three times slower, and say "tfjs kernels only").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { poetrySubset, runCli, scratch, SMALL_SETS } from '../helpers';

test('the built CLI trains on steelscope wasm SIMD kernels with FMA and records them in run.json', () => {
  const dir = scratch('kernels');
  const runDir = join(dir, 'run');
  const args = ['train', '--backend', 'wasm', '--data', poetrySubset(dir, 100), '--run-dir', runDir, '--steps', '2'];
  const r = runCli([...args, ...SMALL_SETS]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const started = r.stdout.split('\n').find((line) => line.startsWith('backend: using'));
  assert.match(started ?? '', /^backend: using wasm \(steelscope wasm SIMD kernels with FMA, \d threads?/, r.stdout);
  const run = JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8'));
  assert.equal(run.backend.name, 'wasm');
  assert.match(run.backend.kernels, /^steelscope wasm SIMD kernels with FMA/);
});
