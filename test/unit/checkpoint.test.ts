import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync, existsSync, readdirSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS } from '../../src/shared/config';
import { latestValidCheckpoint, listCheckpoints, loadCheckpoint, pruneCheckpoints, saveCheckpoint, verifyCheckpoint, type CheckpointPayload } from '../../src/core/train/checkpoint';

function payload(step: number, evalLoss: number | null): CheckpointPayload {
  const w = new Float32Array([1, 2, 3, 4, 5, 6].map((v) => v * step + 0.1));
  return {
    step,
    tokens: step * 100,
    config: PRESETS.tiny,
    data: { cursor: { seed: 1, epoch: 0, index: step }, files: [] },
    rng: [1, 2, 3, 4],
    optimizer: { step },
    eval_loss: evalLoss,
    train_loss: 1,
    weights: new Map([['wte', { shape: [2, 3], data: w }]]),
    optimizerState: new Map([['m.wte', { shape: [2, 3], data: new Float32Array(6).fill(step) }], ['v.wte', { shape: [2, 3], data: new Float32Array(6) }]]),
    tokenizerJson: '{"format":"x"}',
  };
}

function withRun(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-ckpt-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a saved checkpoint verifies and round-trips bit-exactly', () => {
  withRun((run) => {
    const dir = saveCheckpoint(run, payload(10, 2.5));
    assert.ok(dir.endsWith('step-00000010'));
    assert.ok(existsSync(join(dir, 'DONE')));
    const loaded = loadCheckpoint(dir);
    assert.equal(loaded.manifest.step, 10);
    assert.deepEqual([...loaded.weights.get('wte')!.data], [...payload(10, 2.5).weights.get('wte')!.data]);
    assert.deepEqual(loaded.manifest.data.cursor, { seed: 1, epoch: 0, index: 10 });
    assert.equal(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.tmp')).length, 0, 'no temp folder left');
  });
});

test('a checkpoint without DONE or with a wrong hash is never used; the previous one is', () => {
  withRun((run) => {
    saveCheckpoint(run, payload(5, null));
    const ten = saveCheckpoint(run, payload(10, null));
    const fifteen = saveCheckpoint(run, payload(15, null));
    unlinkSync(join(fifteen, 'DONE'));
    const bin = readFileSync(join(ten, 'weights.bin'));
    bin[3] ^= 0xff;
    writeFileSync(join(ten, 'weights.bin'), bin);

    assert.deepEqual(verifyCheckpoint(fifteen), { ok: false, reason: 'no DONE marker (the write did not finish)' });
    const bad = verifyCheckpoint(ten);
    assert.ok(!bad.ok && /weights\.bin does not match its sha256/.test(bad.reason));
    assert.throws(() => loadCheckpoint(ten), /cannot be used: weights\.bin does not match/);

    const skipped: string[] = [];
    const found = latestValidCheckpoint(run, (e, reason) => skipped.push(`${e.step}: ${reason}`));
    assert.equal(found?.manifest.step, 5);
    assert.equal(skipped.length, 2);
    assert.match(skipped[0], /^15: no DONE/);
    assert.match(skipped[1], /^10: weights\.bin does not match/);
  });
});

test('a half-written manifest is rejected with its reason', () => {
  withRun((run) => {
    const dir = saveCheckpoint(run, payload(3, null));
    writeFileSync(join(dir, 'manifest.json'), '{"format":"steelscope.checkpoint/1", "fi');
    const v = verifyCheckpoint(dir);
    assert.ok(!v.ok && /manifest\.json unreadable/.test(v.reason));
  });
});

test('pruning keeps the newest K and the best by eval loss, and removes stale temp folders', () => {
  withRun((run) => {
    saveCheckpoint(run, payload(1, 3.0));
    saveCheckpoint(run, payload(2, 1.0)); // best
    saveCheckpoint(run, payload(3, 2.0));
    saveCheckpoint(run, payload(4, 2.5));
    saveCheckpoint(run, payload(5, 2.6));
    mkdirSync(join(run, 'checkpoints', '.tmp-step-00000006-999999'));
    const removed = pruneCheckpoints(run, 2);
    assert.deepEqual(removed, [1, 3]);
    assert.deepEqual(listCheckpoints(run).map((e) => e.step), [2, 4, 5]);
    assert.ok(!existsSync(join(run, 'checkpoints', '.tmp-step-00000006-999999')));
  });
});
