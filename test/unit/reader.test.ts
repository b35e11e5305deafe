// The shared incremental reader and its JSONL framing and decoding: a record longer than the cap
// is skipped and counted without being held or read twice, only regular files are read, and
// Python's NaN/Infinity tokens become the run folder's markers with the other fields kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RecordAssembler, type Assembled } from '../../src/shared/framing';
import { decodeJsonLine, jsonlFramer, parseJsonl, quoteNonFiniteTokens } from '../../src/shared/jsonl';
import { IncrementalReader, NotRegularFileError, readRegularFile, type Frame } from '../../src/shared/node/reader';
import { isMetricRecord, isSampleRecord, type MetricRecord } from '../../src/shared/run';
import { appendRecord, newSeriesTable } from '../../src/host/runs/seriesTable';
import { JsonlTailer } from '../../src/host/runs/tailer';
import { RunStore } from '../../src/host/runs/store';
import { scratch, storeOnlyTarget } from '../helpers';

const line = (step: number) => `{"step":${step},"t":${1000 + step}}\n`;
const text = (frames: Frame[]) =>
  frames.map((f) => (f.kind === 'record' ? Buffer.from(f.bytes).toString() : `<${f.length} skipped>`));

async function pass(reader: IncrementalReader): Promise<{ frames: Frame[]; resets: number }> {
  const frames: Frame[] = [];
  let resets = 0;
  for await (const event of reader.read()) {
    if (event.kind === 'reset') resets++;
    else frames.push(...event.frames);
  }
  return { frames, resets };
}

test('a line longer than the cap is skipped once, counted, never held whole, and the next lines arrive', async () => {
  const path = join(scratch('reader'), 'm.jsonl');
  const cap = 1024;
  const long = `{"step":2,"t":3,"note":"${'x'.repeat(20 * cap)}"}\n`;
  writeFileSync(path, line(1) + long + line(3));
  const reader = new IncrementalReader(path, jsonlFramer, { maxRecordBytes: cap, chunkBytes: 1024 });
  const first = await pass(reader);
  assert.deepEqual(text(first.frames), [line(1).trim(), `<${long.length} skipped>`, line(3).trim()]);
  assert.equal(reader.offset, line(1).length + long.length + line(3).length);
  assert.ok(
    reader.peakBufferedBytes <= cap + 1024,
    `held at most the cap plus a chunk, held ${reader.peakBufferedBytes}`,
  );
  appendFileSync(path, line(4));
  const second = await pass(reader);
  assert.deepEqual(text(second.frames), [line(4).trim()]);
  assert.equal(
    reader.bytesRead,
    line(1).length + long.length + line(3).length + line(4).length,
    'every byte read once',
  );
});

test('an oversized line still being written is moved past as it grows, not read again from its start', async () => {
  const path = join(scratch('reader'), 'm.jsonl');
  const cap = 1024;
  writeFileSync(path, line(1) + 'y'.repeat(3 * cap));
  const reader = new IncrementalReader(path, jsonlFramer, { maxRecordBytes: cap, chunkBytes: 1024 });
  assert.deepEqual(text((await pass(reader)).frames), [line(1).trim()]);
  for (let i = 0; i < 5; i++) {
    appendFileSync(path, 'y'.repeat(3 * cap));
    assert.deepEqual((await pass(reader)).frames, [], 'no end yet: nothing handed out');
  }
  appendFileSync(path, 'tail\n' + line(2));
  const last = await pass(reader);
  assert.deepEqual(text(last.frames), [`<${18 * cap + 5} skipped>`, line(2).trim()]);
  assert.equal(reader.bytesRead, line(1).length + 18 * cap + 5 + line(2).length, 'every byte read once');
  assert.ok(reader.peakBufferedBytes <= cap + 1024);
});

test('the tailer counts an oversized line as malformed and keeps reading', async () => {
  const path = join(scratch('reader'), 'm.jsonl');
  writeFileSync(path, line(1) + `{"step":2,"t":1,"s":"${'z'.repeat(5000)}"}\n` + line(3));
  const tailer = new JsonlTailer(path, isMetricRecord, {
    pollMs: 0,
    watch: false,
    maxRecordBytes: 2048,
    chunkBytes: 1024,
  });
  const steps: number[] = [];
  tailer.onRecords((records) => steps.push(...records.map((r) => r.step)));
  await tailer.readNow();
  assert.deepEqual(steps, [1, 3]);
  assert.equal(tailer.malformed, 1);
});

test(
  'a metrics.jsonl that is a link to /dev/zero is refused, not read (memory stays put)',
  { timeout: 20_000 },
  async () => {
    const dir = scratch('reader');
    const path = join(dir, 'metrics.jsonl');
    symlinkSync('/dev/zero', path);
    const tailer = new JsonlTailer(path, isMetricRecord, { pollMs: 0, watch: false });
    let batches = 0;
    tailer.onRecords(() => batches++);
    await tailer.readNow();
    assert.ok(tailer.lastError instanceof NotRegularFileError, `refused: ${String(tailer.lastError)}`);
    assert.match((tailer.lastError as Error).message, /not a regular file/);
    assert.equal(batches, 0);
    assert.equal(tailer.offset, 0);
  },
);

test('a FIFO is refused without blocking on its open', { timeout: 20_000 }, async () => {
  const path = join(scratch('reader'), 'metrics.jsonl');
  execFileSync('mkfifo', [path]);
  const reader = new IncrementalReader(path, jsonlFramer);
  await assert.rejects(pass(reader), NotRegularFileError);
});

test('a resumed offset that does not end a line starts the file over with a reset', async () => {
  const path = join(scratch('reader'), 'm.jsonl');
  writeFileSync(path, line(1) + line(2));
  const good = await pass(new IncrementalReader(path, jsonlFramer, { offset: line(1).length }));
  assert.deepEqual({ resets: good.resets, lines: text(good.frames) }, { resets: 0, lines: [line(2).trim()] });
  const bad = await pass(new IncrementalReader(path, jsonlFramer, { offset: 3 }));
  assert.deepEqual(
    { resets: bad.resets, lines: text(bad.frames) },
    { resets: 1, lines: [line(1).trim(), line(2).trim()] },
  );
});

test('a file rewritten in place with a newline at our offset but other bytes before it starts over', async () => {
  const path = join(scratch('reader'), 'm.jsonl');
  writeFileSync(path, line(1) + line(2));
  const reader = new IncrementalReader(path, jsonlFramer);
  await pass(reader);
  writeFileSync(path, line(7) + line(8) + line(9)); // same inode, same line lengths, longer
  const again = await pass(reader);
  assert.equal(again.resets, 1);
  assert.deepEqual(
    text(again.frames),
    [line(7), line(8), line(9)].map((l) => l.trim()),
  );
});

test("Python's NaN, Infinity and -Infinity are read as markers; other fields and strings are kept", () => {
  const written =
    '{"step": 3, "t": 5, "loss": NaN, "gn": Infinity, "lr": -Infinity, "note": "NaN Infinity -Infinity \\" NaN", "ok": 1.5}';
  const line = decodeJsonLine(Buffer.from(written), isMetricRecord);
  assert.equal(line.kind, 'record');
  if (line.kind !== 'record') return;
  assert.deepEqual(line.value, {
    step: 3,
    t: 5,
    loss: 'NaN',
    gn: 'Infinity',
    lr: '-Infinity',
    note: 'NaN Infinity -Infinity " NaN',
    ok: 1.5,
  });
  assert.deepEqual(JSON.parse(line.json), line.value, 'the record travels as standard JSON');
  const table = newSeriesTable('train');
  appendRecord(table, line.value as MetricRecord);
  assert.ok(
    Number.isNaN(table.fields.get('loss')?.[0]) && table.loggedNaN.get('loss')?.has(0),
    'NaN is a logged marker, not a gap',
  );
  assert.equal(table.fields.get('gn')?.[0], Infinity);
  assert.equal(table.fields.get('lr')?.[0], -Infinity);
  assert.equal(table.fields.get('ok')?.[0], 1.5);
});

test('strings that contain the words are never touched, and other broken JSON stays malformed', () => {
  assert.equal(quoteNonFiniteTokens('{"a":"NaN","b":"x\\"Infinity"}'), '{"a":"NaN","b":"x\\"Infinity"}');
  const sample =
    '{"step":1,"t":1,"prompt":"NaN","text":"Infinity and -Infinity","temperature":0.8,"top_k":1,"top_p":1,"seed":1}';
  const decoded = decodeJsonLine(Buffer.from(sample), isSampleRecord);
  assert.deepEqual(decoded.kind === 'record' && [decoded.value.prompt, decoded.value.text, decoded.json], [
    'NaN',
    'Infinity and -Infinity',
    sample,
  ]);
  for (const bad of [
    '{"step":1,"t":1,"x":NaNa}',
    '{"step":1,"t":1,"x":nan}',
    '{"step":1,"t":1,"x":Inf}',
    "{'step':1}",
    '{"step":NaN,"t":1}',
  ]) {
    assert.equal(decodeJsonLine(Buffer.from(bad), isMetricRecord).kind, 'malformed', bad);
  }
});

test('parseJsonl: blank lines are not malformed, a partial last line is left, an overlong line is counted', () => {
  const bytes = Buffer.from(`${line(1)}\n  \n{"step":2,"t":2,"x":"${'q'.repeat(300)}"}\n${line(3)}{"step":4`);
  const chunk = parseJsonl(bytes, isMetricRecord, 200);
  assert.deepEqual(
    chunk.records.map((r) => r.step),
    [1, 3],
  );
  assert.equal(chunk.malformed, 1);
  assert.equal(chunk.consumed, bytes.length - '{"step":4'.length);
});

test('a line arriving in many small chunks is joined once (chunks wait in a list)', () => {
  const assembler = new RecordAssembler(jsonlFramer, 1 << 20);
  const body = Buffer.from(JSON.stringify({ step: 1, t: 1, note: 'n'.repeat(100_000) }));
  const out: Assembled[] = [];
  let joins = 0;
  for (let at = 0; at < body.length; at += 100) {
    const before = assembler.peakWindow;
    out.push(...assembler.push(body.subarray(at, at + 100)));
    if (assembler.peakWindow !== before) joins++;
  }
  assert.equal(joins, 0, 'no join while no chunk can end the line');
  out.push(...assembler.push(Buffer.from('\n')));
  assert.equal(out.length, 1);
  assert.equal(out[0].kind === 'record' && Buffer.from(out[0].bytes).equals(body), true);
  assert.equal(assembler.peakWindow, body.length + 1);
});

test('run.json is read only as a regular file of at most the cap', { timeout: 20_000 }, async () => {
  const dir = scratch('reader');
  symlinkSync('/dev/zero', join(dir, 'run.json'));
  await assert.rejects(readRegularFile(join(dir, 'run.json')), NotRegularFileError);
  writeFileSync(join(dir, 'big.json'), 'x'.repeat(2000));
  await assert.rejects(readRegularFile(join(dir, 'big.json'), 1000), /larger than 1000 bytes/);
  assert.equal((await readRegularFile(join(dir, 'big.json'), 2000)).length, 2000);
});

test(
  'the store observes a folder whose files link to /dev/zero without hanging or growing',
  { timeout: 20_000 },
  async () => {
    const dir = scratch('reader');
    for (const name of ['run.json', 'metrics.jsonl', 'samples.jsonl', 'events.jsonl'])
      symlinkSync('/dev/zero', join(dir, name));
    const store = new RunStore({ watch: false, pollMs: 0, aliveCheckMs: 0, flushMs: 60_000 });
    const target = storeOnlyTarget('fake', 'Fake');
    try {
      const key = store.addRun(target, dir);
      await store.refresh();
      await store.whenIdle();
      const run = store.get(key);
      assert.equal(run?.summary.status, 'unknown');
      assert.equal(run?.tables.size, 0);
    } finally {
      store.dispose();
    }
  },
);
