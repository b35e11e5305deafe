import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  existsSync,
  readdirSync,
  mkdirSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS } from '../../src/shared/config';
import {
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
  type CheckpointPayload,
} from '../../src/core/train/checkpoint';
import { parseTensorIndex, TensorFileError } from '../../src/core/train/tensorfile';
import { bestCheckpointIndex, MANIFEST_MAX_BYTES } from '../../src/shared/checkpoint';
import {
  checkCheckpoint,
  latestValidCheckpoint,
  listCheckpointFolders,
  scanCheckpoints,
} from '../../src/shared/node/checkpoints';
import { toCheckpointSummaries } from '../../src/host/ssh/remoteFollower';
import { parseFollowMessage } from '../../src/shared/follow-protocol';

const verifyCheckpoint = (dir: string) => checkCheckpoint(dir, { hashes: true });

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
    optimizerState: new Map([
      ['m.wte', { shape: [2, 3], data: new Float32Array(6).fill(step) }],
      ['v.wte', { shape: [2, 3], data: new Float32Array(6) }],
    ]),
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
    assert.equal(
      readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.tmp')).length,
      0,
      'no temp folder left',
    );
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
    assert.deepEqual(
      listCheckpointFolders(run).map((e) => e.step),
      [2, 4, 5],
    );
    assert.ok(!existsSync(join(run, 'checkpoints', '.tmp-step-00000006-999999')));
  });
});

// --- What a checkpoint folder may hold (issue 14): exactly the format's files, regular, of their size.

function readManifest(dir: string): { files: { name: string; sha256: string; bytes: number }[]; [k: string]: unknown } {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
}
function writeManifest(dir: string, manifest: object): void {
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
}
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

test('a manifest entry naming a path outside the folder is refused without reading it', () => {
  withRun((run) => {
    const dir = saveCheckpoint(run, payload(4, null));
    const outside = join(run, 'outside.bin');
    writeFileSync(outside, 'not a weight');
    const m = readManifest(dir);
    m.files.push({ name: '../../outside.bin', sha256: sha('not a weight'), bytes: 12 });
    writeManifest(dir, m);
    const v = verifyCheckpoint(dir);
    assert.ok(!v.ok && /files\.5\.name must be one of weights\.json/.test(v.reason), JSON.stringify(v));
    m.files = m.files.map((f) =>
      f.name === 'weights.bin' ? { name: '../../outside.bin', sha256: sha('not a weight'), bytes: 12 } : f,
    );
    m.files.pop();
    writeManifest(dir, m);
    assert.ok(!verifyCheckpoint(dir).ok);
    assert.throws(
      () => loadCheckpoint(dir),
      (err: Error) => err.name === 'CheckpointError' && /must be one of/.test(err.message),
    );
  });
});

test('files: [] or a missing entry is not a checkpoint: altered weights never load', () => {
  withRun((run) => {
    const dir = saveCheckpoint(run, payload(4, null));
    const bin = readFileSync(join(dir, 'weights.bin'));
    bin[0] ^= 0xff;
    writeFileSync(join(dir, 'weights.bin'), bin);
    const m = readManifest(dir);
    writeManifest(dir, { ...m, files: [] });
    const empty = verifyCheckpoint(dir);
    assert.ok(
      !empty.ok &&
        /files must list exactly weights\.json, weights\.bin, optimizer\.json, optimizer\.bin, tokenizer\.json/.test(
          empty.reason,
        ),
    );
    assert.throws(
      () => loadCheckpoint(dir),
      /cannot be used: manifest\.json is not a steelscope\.checkpoint\/1 manifest: files must list exactly/,
    );
    writeManifest(dir, { ...m, files: m.files.filter((f) => f.name !== 'weights.bin') });
    assert.ok(!verifyCheckpoint(dir).ok);
    writeManifest(dir, { ...m, files: [...m.files, m.files[0]] });
    assert.ok(!verifyCheckpoint(dir).ok, 'a repeated entry');
  });
});

test('a data file that is a symbolic link, or not of its manifest size, is refused before it is read', () => {
  withRun((run) => {
    const dir = saveCheckpoint(run, payload(4, null));
    const real = join(run, 'weights-elsewhere.bin');
    writeFileSync(real, readFileSync(join(dir, 'weights.bin')));
    unlinkSync(join(dir, 'weights.bin'));
    symlinkSync(real, join(dir, 'weights.bin'));
    const linked = verifyCheckpoint(dir);
    assert.deepEqual(linked, { ok: false, reason: 'weights.bin is not a regular file (a symbolic link)' });
    assert.throws(() => loadCheckpoint(dir), /weights\.bin is not a regular file/);

    unlinkSync(join(dir, 'weights.bin'));
    symlinkSync('/dev/zero', join(dir, 'weights.bin'));
    assert.deepEqual(checkCheckpoint(dir, { hashes: false }), {
      ok: false,
      reason: 'weights.bin is not a regular file (a symbolic link)',
    });

    unlinkSync(join(dir, 'weights.bin'));
    writeFileSync(join(dir, 'weights.bin'), readFileSync(real));
    const m = readManifest(dir);
    const bytes = m.files.find((f) => f.name === 'weights.bin')!.bytes;
    m.files = m.files.map((f) => (f.name === 'weights.bin' ? { ...f, bytes: bytes + 4 } : f));
    writeManifest(dir, m);
    assert.deepEqual(checkCheckpoint(dir, { hashes: false }), {
      ok: false,
      reason: `weights.bin has ${bytes} bytes, the manifest says ${bytes + 4}`,
    });
  });
});

test("the manifest's tokenizer cannot point outside the folder", () => {
  withRun((run) => {
    const dir = saveCheckpoint(run, payload(4, null));
    writeFileSync(join(run, 'secret.json'), '{"secret":true}');
    writeManifest(dir, { ...readManifest(dir), tokenizer: '../../secret.json' });
    const v = verifyCheckpoint(dir);
    assert.ok(!v.ok && /tokenizer must be "tokenizer\.json"/.test(v.reason), JSON.stringify(v));
    assert.throws(() => loadCheckpoint(dir), /tokenizer must be "tokenizer\.json"/);
  });
});

test('a skipped checkpoint says why; the resume writer turns that into an event', () => {
  withRun((run) => {
    saveCheckpoint(run, payload(2, null));
    const four = saveCheckpoint(run, payload(4, null));
    writeManifest(four, { ...readManifest(four), files: [] });
    const skipped: string[] = [];
    const found = latestValidCheckpoint(run, (f, reason) => skipped.push(`${f.step}: ${reason}`));
    assert.equal(found?.manifest.step, 2);
    assert.deepEqual(skipped, [
      '4: manifest.json is not a steelscope.checkpoint/1 manifest: files must list exactly weights.json, weights.bin, optimizer.json, optimizer.bin, tokenizer.json, once each',
    ]);
  });
});

test('a manifest over its cap or a tensor index that overruns its payload is refused', () => {
  withRun((run) => {
    const dir = saveCheckpoint(run, payload(4, null));
    writeFileSync(join(dir, 'manifest.json'), Buffer.alloc(MANIFEST_MAX_BYTES + 1, 0x20));
    assert.match(
      String(!verifyCheckpoint(dir).ok && (verifyCheckpoint(dir) as { reason: string }).reason),
      /more than the 1048576 allowed/,
    );
    assert.throws(
      () =>
        parseTensorIndex(
          Buffer.from(
            JSON.stringify({
              format: 'steelscope.tensors/1',
              tensors: [{ name: 'w', shape: [1e6], dtype: 'float32', offset: 0, bytes: 4e6 }],
            }),
          ),
          64,
          'weights.json',
        ),
      TensorFileError,
    );
    assert.throws(
      () =>
        parseTensorIndex(
          Buffer.from(
            '{"format":"steelscope.tensors/1","tensors":[{"name":"w","shape":[1],"dtype":"float64","offset":0,"bytes":4}]}',
          ),
          64,
          'w.json',
        ),
      /tensors\.0\.dtype/,
    );
  });
});

// --- One rule for the best checkpoint (issue 12): lowest finite eval loss, never a non-finite one.

test('every reader picks the same best checkpoint, and never one whose eval loss is not finite', async () => {
  // Over the follow protocol an eval loss of 1e400 arrives as Infinity; it must not be "best".
  const remote = toCheckpointSummaries([
    { step: 1, dir: '/r/1', complete: true, eval_loss: JSON.parse('1e400') as number },
    { step: 2, dir: '/r/2', complete: true, eval_loss: null },
  ]);
  assert.deepEqual(
    remote.map((c) => c.best),
    [false, false],
  );
  assert.equal(
    bestCheckpointIndex([
      { step: 1, complete: true, evalLoss: NaN },
      { step: 2, complete: true, evalLoss: 3 },
    ]),
    1,
  );
  assert.equal(
    bestCheckpointIndex([
      { step: 1, complete: true, evalLoss: 2 },
      { step: 2, complete: true, evalLoss: 2 },
    ]),
    0,
    'earliest on a tie',
  );
  assert.equal(bestCheckpointIndex([{ step: 1, complete: false, evalLoss: 1 }]), -1);

  await withRunAsync(async (run) => {
    for (const [step, loss] of [
      [1, 3.0],
      [2, 1.0],
      [3, 2.0],
      [4, 2.5],
    ] as const)
      saveCheckpoint(run, payload(step, loss));
    const two = join(run, 'checkpoints', 'step-00000002');
    writeManifest(two, { ...readManifest(two), eval_loss: 'NaN' }); // a Python writer's marker
    const local = await scanCheckpoints(run);
    const fromFollow = toCheckpointSummaries(
      local.map((c) => ({ step: c.step, dir: c.dir, complete: c.complete, eval_loss: c.evalLoss })),
    );
    assert.deepEqual(
      local.filter((c) => c.best).map((c) => c.step),
      [3],
    );
    assert.deepEqual(
      fromFollow.filter((c) => c.best).map((c) => c.step),
      [3],
    );
    assert.deepEqual(pruneCheckpoints(run, 1), [1, 2], 'pruning keeps the newest and the same best');
  });
});

test('the observer lists a checkpoint with a bad manifest as skipped, with the reason', async () => {
  await withRunAsync(async (run) => {
    const dir = saveCheckpoint(run, payload(1, 1.5));
    writeManifest(dir, { ...readManifest(dir), files: [] });
    const [c] = await scanCheckpoints(run);
    assert.equal(c.complete, false);
    assert.equal(c.best, false);
    assert.match(c.problem ?? '', /files must list exactly/);
    // Over SSH: `steelscope follow` sends the reason along, and the host shows it.
    const line = JSON.stringify({
      checkpoints: [{ step: c.step, dir: c.dir, complete: c.complete, eval_loss: c.evalLoss, problem: c.problem }],
    });
    const message = parseFollowMessage(line);
    assert.ok(message && 'checkpoints' in message);
    assert.deepEqual(toCheckpointSummaries(message.checkpoints), [c]);
  });
});

async function withRunAsync(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-ckpt-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('best_by a task metric: pruning, the observer and follow keep the highest acc from evals.jsonl', async () => {
  await withRunAsync(async (run) => {
    const config = { ...PRESETS.tiny, eval_tasks: [{ task: 'poetry-mc' }], best_by: 'poetry-mc/acc' };
    // By eval loss step 2 would be best; by poetry-mc's macro acc it is step 3.
    const losses = [3.0, 1.0, 2.0, 2.5, 2.6];
    losses.forEach((loss, i) => saveCheckpoint(run, { ...payload(i + 1, loss), config }));
    const rec = (step: number, acc: number, subject = '_average') =>
      JSON.stringify({ step, t: 0, task: 'poetry-mc', subject, n: 400, acc }) + '\n';
    writeFileSync(
      join(run, 'evals.jsonl'),
      rec(1, 0.2) +
        rec(2, 0.25) +
        rec(3, 0.4) +
        rec(3, 0.9, 'author') +
        rec(4, 0.3) +
        rec(5, 0.31) +
        'not json\n' +
        // `steelscope eval --shots 0` on step 4 afterwards: not the shots eval_tasks ranks by (5)
        JSON.stringify({ step: 4, t: 0, task: 'poetry-mc', subject: '_average', n: 400, acc: 0.99, shots: 0 }) +
        '\n',
    );
    const local = await scanCheckpoints(run);
    assert.deepEqual(
      local.filter((c) => c.best).map((c) => c.step),
      [3],
    );
    const fromFollow = toCheckpointSummaries(
      local.map((c) => ({ step: c.step, dir: c.dir, complete: c.complete, eval_loss: c.evalLoss, score: c.score })),
    );
    assert.deepEqual(
      fromFollow.filter((c) => c.best).map((c) => c.step),
      [3],
    );
    assert.deepEqual(pruneCheckpoints(run, 2), [1, 2], 'the newest 2 and the best by acc are kept');
  });
});
