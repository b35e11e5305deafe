// `steelscope install-backend` as a user meets it: npm really runs. Offline (as where this suite
// is run) @tensorflow/tfjs-node's install script cannot download libtensorflow, and the command
// must say so, say that training goes on with wasm, and exit 1 within a bounded time; where the
// download works, the installed backend must load and compute instead.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { runCli, scratch } from '../helpers';

const LIMIT_S = 240;

test('install-backend fails cleanly where libtensorflow cannot be downloaded (or installs a working backend)', () => {
  const dir = scratch('install-backend');
  // Bounded time: npm is stopped at --timeout, and a CLI still running a minute later is cut off by
  // runCli (code null, "no exit within"), which fails below. No clock of ours on top: 30 s of slack
  // after the timeout was a bound a loaded machine could break.
  const r = runCli(['install-backend', '--dir', dir, '--timeout', String(LIMIT_S)], (LIMIT_S + 60) * 1000);
  assert.match(r.stdout, /Installing @tensorflow\/tfjs-node@4\.22\.0 into /);
  if (r.code === 0) {
    assert.match(r.stdout, /@tensorflow\/tfjs-node 4\.22\.0 works \(tensorflow 6\)/);
    return;
  }
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stdout,
    /the fast backend was not installed: (the package's install script must download libtensorflow|npm could not reach|npm did not finish)/,
  );
  assert.match(r.stdout, /Training continues on WebAssembly/);
  assert.doesNotMatch(r.stdout, /^\s+at /m, 'no stack trace of ours');
});

test('install-backend --gpu without an NVIDIA GPU says so and exits 1 without running npm', (t) => {
  if (/GPU \d/.test(spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' }).stdout ?? '')) {
    t.skip('this machine has an NVIDIA GPU: --gpu would really install');
    return;
  }
  const r = runCli(['install-backend', '--gpu', '--dir', scratch('install-backend-gpu')], 60_000);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /--gpu needs an NVIDIA GPU/);
  assert.match(r.stdout, /Training continues on WebAssembly/);
  assert.doesNotMatch(r.stdout, /Installing/);
});
