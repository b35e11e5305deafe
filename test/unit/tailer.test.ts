// JsonlTailer: the observer follows an append-only JSONL file exactly — every complete line once,
// in order; a partial last line waits; truncation, replacement and deletion start over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMetricRecord, type MetricRecord } from '../../src/shared/run';
import { JsonlTailer, type RecordBatch, type TailerOptions } from '../../src/host/runs/tailer';
import { scratch, sleep, until } from '../helpers';

const line = (step: number, extra = '') => `{"step":${step},"t":${1000 + step}${extra}}\n`;

/** A tailer whose batches are collected, started only by readNow() unless `start` is asked for. */
function follow(path: string, options: TailerOptions = { pollMs: 0, watch: false }) {
  const tailer = new JsonlTailer(path, isMetricRecord, options);
  const batches: { steps: number[]; batch: RecordBatch }[] = [];
  const malformed: number[] = [];
  tailer.onRecords((records: MetricRecord[], batch) => batches.push({ steps: records.map((r) => r.step), batch }));
  tailer.onMalformed((added) => malformed.push(added));
  const steps = () => batches.flatMap((b) => b.steps);
  return { tailer, batches, malformed, steps };
}

test('a last line without its newline waits, then arrives once complete', async () => {
  const path = join(scratch('tail'), 'm.jsonl');
  writeFileSync(path, line(1) + '{"step":2,"t":');
  const f = follow(path);
  await f.tailer.readNow();
  assert.deepEqual(f.steps(), [1]);
  assert.equal(f.tailer.offset, line(1).length);
  appendFileSync(path, '1002}\n');
  await f.tailer.readNow();
  assert.deepEqual(f.steps(), [1, 2]);
  assert.equal(f.malformed.length, 0, 'the partial line was never parsed as a broken one');
});

test('appended records arrive in order, none twice', async () => {
  const path = join(scratch('tail'), 'm.jsonl');
  const f = follow(path);
  for (let step = 0; step < 50; step++) {
    appendFileSync(path, line(step));
    if (step % 7 === 0) await f.tailer.readNow();
  }
  await f.tailer.readNow();
  await f.tailer.readNow();
  assert.deepEqual(
    f.steps(),
    Array.from({ length: 50 }, (_, i) => i),
  );
  assert.ok(f.batches.every((b) => !b.batch.reset));
});

test('reads requested during a read coalesce, and still see every line', async () => {
  const path = join(scratch('tail'), 'm.jsonl');
  writeFileSync(path, line(0));
  const f = follow(path);
  const reads = [f.tailer.readNow(), f.tailer.readNow(), f.tailer.readNow()];
  appendFileSync(path, line(1));
  await Promise.all(reads);
  await f.tailer.readNow();
  assert.deepEqual(f.steps(), [0, 1]);
});

test('a truncated file is re-read from the start with reset', async () => {
  const path = join(scratch('tail'), 'm.jsonl');
  writeFileSync(path, line(1) + line(2) + line(3));
  const f = follow(path);
  await f.tailer.readNow();
  writeFileSync(path, line(7)); // same inode, shorter
  await f.tailer.readNow();
  assert.deepEqual(f.batches.at(-1), { steps: [7], batch: { reset: true, offset: line(7).length } });

  truncateSync(path, 0);
  await f.tailer.readNow();
  assert.deepEqual(
    f.batches.at(-1),
    { steps: [], batch: { reset: true, offset: 0 } },
    'emptied: consumers still hear of it',
  );
});

test('a replaced file (renamed over, even if longer) is re-read from the start with reset', async () => {
  const dir = scratch('tail');
  const path = join(dir, 'm.jsonl');
  writeFileSync(path, line(1) + line(2));
  const f = follow(path);
  await f.tailer.readNow();
  writeFileSync(join(dir, 'next'), line(10) + line(11) + line(12) + line(13));
  renameSync(join(dir, 'next'), path);
  await f.tailer.readNow();
  assert.deepEqual(f.batches.at(-1)?.steps, [10, 11, 12, 13]);
  assert.equal(f.batches.at(-1)?.batch.reset, true);
});

test('a deleted file resets to nothing, and a new one is read from its start', async () => {
  const path = join(scratch('tail'), 'm.jsonl');
  writeFileSync(path, line(1));
  const f = follow(path);
  await f.tailer.readNow();
  rmSync(path);
  await f.tailer.readNow();
  assert.deepEqual(f.batches.at(-1), { steps: [], batch: { reset: true, offset: 0 } });
  writeFileSync(path, line(5));
  await f.tailer.readNow();
  assert.deepEqual(f.batches.at(-1), { steps: [5], batch: { reset: false, offset: line(5).length } });
});

test('malformed lines are skipped and counted, and reading carries on', async () => {
  const path = join(scratch('tail'), 'm.jsonl');
  writeFileSync(path, line(1) + 'not json\n' + '{"t":5}\n' + '[1,2]\n' + line(2) + '\n');
  const f = follow(path);
  await f.tailer.readNow();
  assert.deepEqual(f.steps(), [1, 2]);
  assert.equal(f.tailer.malformed, 3, 'blank lines are not malformed; a record without step is');
  assert.deepEqual(f.malformed, [3]);
  appendFileSync(path, '{oops\n' + line(3));
  await f.tailer.readNow();
  assert.equal(f.tailer.malformed, 4);
  assert.deepEqual(f.steps(), [1, 2, 3]);
});

test('a missing file is waited for, and read once it appears (poll only, no fs.watch)', async () => {
  const path = join(scratch('tail'), 'later.jsonl');
  const f = follow(path, { pollMs: 20, watch: false });
  f.tailer.start();
  try {
    await sleep(60);
    assert.deepEqual(f.steps(), []);
    writeFileSync(path, line(1));
    await until('the record', () => f.steps().length === 1);
    appendFileSync(path, line(2) + line(3));
    await until('3 records', () => f.steps().length === 3);
    assert.deepEqual(f.steps(), [1, 2, 3]);
  } finally {
    f.tailer.dispose();
  }
});

test('fs.watch alone (no poll) picks up a file appearing and growing', async () => {
  const path = join(scratch('tail'), 'watched.jsonl');
  const f = follow(path, { pollMs: 0, watch: true });
  f.tailer.start();
  try {
    writeFileSync(path, line(1));
    await until('the record', () => f.steps().length === 1);
    appendFileSync(path, line(2));
    await until('2 records', () => f.steps().length === 2);
    assert.deepEqual(f.steps(), [1, 2]);
  } finally {
    f.tailer.dispose();
  }
});

test('small chunks: lines split across chunk borders and a line longer than a chunk', async () => {
  const path = join(scratch('tail'), 'm.jsonl');
  const long = line(2, `,"note":"${'x'.repeat(5000)}"`);
  writeFileSync(path, Array.from({ length: 400 }, (_, i) => (i === 2 ? long : line(i))).join(''));
  const f = follow(path, { pollMs: 0, watch: false, chunkBytes: 1024 });
  await f.tailer.readNow();
  assert.deepEqual(
    f.steps(),
    Array.from({ length: 400 }, (_, i) => i),
  );
  assert.ok(f.batches.length > 3, 'read in several chunks');
});

test('a 200,000-line file is ingested completely', async () => {
  const path = join(scratch('tail'), 'big.jsonl');
  const lines: string[] = [];
  for (let step = 0; step < 200_000; step++)
    lines.push(`{"step":${step},"t":${step},"kind":"train","loss":${(5 - step / 1e5).toFixed(4)},"lr":0.003}`);
  writeFileSync(path, lines.join('\n') + '\n');
  const tailer = new JsonlTailer(path, isMetricRecord, { pollMs: 0, watch: false });
  let count = 0;
  let last = -1;
  let ordered = true;
  tailer.onRecords((records) => {
    for (const r of records) {
      if (r.step !== last + 1) ordered = false;
      last = r.step;
    }
    count += records.length;
  });
  await tailer.readNow();
  assert.equal(count, 200_000);
  assert.ok(ordered);
});
