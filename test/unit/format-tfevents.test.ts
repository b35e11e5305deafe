// TensorBoard event files: every value written by an independent writer (test/formats/
// write_tfevents.py: python3-protobuf and python3-crcmod) read back exactly; a file cut at any byte
// of its last record reads complete records only and goes on when the rest arrives; a flipped data
// byte skips one record; a bad length checksum stops the file with one counted error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { maskedCrc32c } from '../../src/shared/formats/tfrecord';
import { EventFileReader, EventFolderReader } from '../../src/shared/node/formats/tfevents';
import { fold, points, PYTHON, writeEvents, WRITE_TFEVENTS, type Folded, type TbEvent } from '../formats/fixtures';
import { scratch } from '../helpers';
import { kindOf } from '../../src/shared/metricFields';
import { crc32c } from '@aws-crypto/crc32c';

const f32 = Math.fround;

const EVENTS: TbEvent[] = [
  { wall_time: 1700000000.25, step: 1, values: [{ tag: 'train/loss', simple_value: 2.75 }] },
  { wall_time: 1700000000.5, step: 1, values: [{ tag: 'train/lr', tensor: 0.001, dtype: 'float', packed: 'content' }] },
  {
    wall_time: 1700000001,
    step: 2,
    values: [
      { tag: 'train/loss', simple_value: 2.5 },
      { tag: 'train/lr', tensor: 0.002 },
    ],
  },
  {
    wall_time: 1700000001.5,
    step: 2,
    values: [{ tag: 'grad_norm', tensor: 1.2345678901234, dtype: 'double', packed: 'content' }],
  },
  { wall_time: 1700000002, step: 3, values: [{ tag: 'grad_norm', tensor: 0.1, dtype: 'double', packed: 'val' }] },
  { wall_time: 1700000002, step: 3, values: [{ tag: 'tok_per_s', tensor: 1234.5, dtype: 'float', packed: 'val' }] },
  { wall_time: 1700000003, step: 3, values: [{ tag: 'samples/generation', text: '春眠不觉晓 — step 3' }] },
  { wall_time: 1700000004, step: 4, values: [{ tag: 'eval/loss', simple_value: 3.125 }] },
  {
    wall_time: 1700000005,
    step: 5,
    values: [
      { tag: 'train/loss', simple_value: -0.5 },
      { tag: 'samples/generation', text: 'later' },
    ],
  },
];

const EXPECTED = {
  'train:train/loss': [
    [1, 2.75],
    [2, 2.5],
    [5, -0.5],
  ],
  'train:train/lr': [
    [1, f32(0.001)],
    [2, f32(0.002)],
  ],
  'train:grad_norm': [
    [2, 1.2345678901234],
    [3, 0.1],
  ],
  'train:tok_per_s': [[3, 1234.5]],
  'eval:eval/loss': [[4, 3.125]],
};

test('the masked CRC32C matches TensorBoard test vector and crcmod', () => {
  const vector = Buffer.from('\x1a\x11CRC test, one two', 'latin1');
  assert.equal(maskedCrc32c(vector), 0x5794d08a);
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(execFileSync(PYTHON, [WRITE_TFEVENTS, '--crc-vector']).toString().trim(), '0x5794d08a');
});

test('every scalar and text of an event file is read back exactly, with wall times', async () => {
  const dir = scratch('tfevents-values');
  writeEvents(join(dir, 'events.out.tfevents.1700000000.host.1.0'), EVENTS);
  const batch = await new EventFolderReader(dir).read();
  const folded = fold([batch]);
  assert.deepEqual(points(folded), EXPECTED);
  assert.deepEqual(folded.samples, [
    { step: 3, prompt: 'samples/generation', text: '春眠不觉晓 — step 3' },
    { step: 5, prompt: 'samples/generation', text: 'later' },
  ]);
  assert.equal(folded.malformed, 0);
  const train = folded.tables.get('train');
  assert.ok(train);
  assert.equal(train.t[0], 1700000000500); // step 1's last event
  assert.equal(batch.samples[0].t, 1700000003000);
});

test('a file cut at every byte of its last record reads complete records only, then the rest', async () => {
  const dir = scratch('tfevents-cut');
  const full = join(dir, 'full');
  writeEvents(full, EVENTS.slice(0, -1));
  const lastStart = statSync(full).size;
  writeEvents(full, EVENTS.slice(-1));
  const bytes = readFileSync(full);
  const before = points(fold([await new EventFileReader(full).read()]));
  for (let cut = lastStart; cut < bytes.length; cut++) {
    const path = join(dir, `events.out.tfevents.cut${cut}`);
    writeFileSync(path, bytes.subarray(0, cut));
    const reader = new EventFileReader(path);
    const folded = fold([await reader.read()]);
    const withoutLast = points(folded);
    assert.deepEqual(
      withoutLast['train:train/loss'],
      [
        [1, 2.75],
        [2, 2.5],
      ],
      `cut at ${cut}`,
    );
    assert.equal(folded.samples.length, 1, `cut at ${cut}`);
    assert.equal(reader.offset, lastStart, `cut at ${cut}`);
    appendFileSync(path, bytes.subarray(cut));
    fold([await reader.read()], folded);
    assert.deepEqual(points(folded), before, `cut at ${cut}, then the rest`);
    assert.equal(folded.samples.length, 2);
    assert.equal(folded.malformed, 0);
  }
  assert.deepEqual(before, EXPECTED);
});

/** The byte offsets where each record starts (read from the lengths; the test's own walk). */
function recordStarts(bytes: Buffer): number[] {
  const starts: number[] = [];
  for (let at = 0; at < bytes.length; at += 16 + Number(bytes.readBigUInt64LE(at))) starts.push(at);
  return starts;
}

test('a flipped byte in one record data skips that record only', async () => {
  const dir = scratch('tfevents-flip');
  const path = join(dir, 'events.out.tfevents.1');
  writeEvents(path, EVENTS);
  const bytes = readFileSync(path);
  const starts = recordStarts(bytes);
  // Record 0 is the file_version event; record 8 is EVENTS[7], eval/loss at step 4.
  bytes[starts[8] + 12 + 3] ^= 0x40;
  writeFileSync(path, bytes);
  const folded = fold([await new EventFolderReader(dir).read()]);
  const expected: Record<string, unknown> = { ...EXPECTED, 'eval:eval/loss': undefined };
  delete expected['eval:eval/loss'];
  assert.deepEqual(points(folded), expected);
  assert.equal(folded.malformed, 1);
  assert.equal(folded.samples.length, 2);
});

test('a bad length checksum stops the file with one counted error and a problem line', async () => {
  const dir = scratch('tfevents-length');
  const path = join(dir, 'events.out.tfevents.1');
  writeEvents(path, EVENTS);
  const bytes = readFileSync(path);
  const starts = recordStarts(bytes);
  bytes[starts[3] + 9] ^= 0x01; // EVENTS[2]'s length checksum
  writeFileSync(path, bytes);
  const reader = new EventFileReader(path);
  const batch = await reader.read();
  const folded = fold([batch]);
  assert.deepEqual(points(folded), { 'train:train/loss': [[1, 2.75]], 'train:train/lr': [[1, f32(0.001)]] });
  assert.equal(folded.malformed, 1);
  assert.match(batch.problem ?? '', /length checksum is wrong at byte \d+; the rest of the file is not read/);
  assert.ok(reader.stopped);
  writeEvents(path, EVENTS.slice(0, 1));
  const later = await reader.read();
  assert.deepEqual([later.metrics.length, later.malformed, later.problem], [0, 0, undefined]);
});

test('several event files in one folder make one run; sub-folders are not read into it', async () => {
  const dir = scratch('tfevents-several');
  writeEvents(join(dir, 'events.out.tfevents.1.a'), EVENTS.slice(0, 3));
  writeEvents(join(dir, 'events.out.tfevents.2.b'), [
    { wall_time: 1700000010, step: 10, values: [{ tag: 'train/loss', simple_value: 1 }] },
  ]);
  mkdirSync(join(dir, 'eval'));
  writeEvents(join(dir, 'eval', 'events.out.tfevents.3.c'), [
    { wall_time: 1700000010, step: 7, values: [{ tag: 'x', simple_value: 1 }] },
  ]);
  const reader = new EventFolderReader(dir);
  const folded = fold([await reader.read()]);
  assert.deepEqual(points(folded)['train:train/loss'], [
    [1, 2.75],
    [2, 2.5],
    [10, 1],
  ]);
  assert.equal(points(folded)['train:x'], undefined);
  writeEvents(join(dir, 'events.out.tfevents.2.b'), [
    { wall_time: 1700000011, step: 11, values: [{ tag: 'train/loss', simple_value: 0.5 }] },
  ]);
  fold([await reader.read()], folded);
  assert.deepEqual(points(folded)['train:train/loss'], [
    [1, 2.75],
    [2, 2.5],
    [10, 1],
    [11, 0.5],
  ]);
});

test('a reader restarted at its position after any record loses and repeats nothing', async () => {
  const dir = scratch('tfevents-resume');
  const full = join(dir, 'full');
  writeEvents(full, EVENTS);
  const bytes = readFileSync(full);
  const expected = fold([await new EventFileReader(full).read()]);
  for (const cut of [...recordStarts(bytes), bytes.length]) {
    const sub = join(dir, `cut${cut}`);
    mkdirSync(sub);
    const path = join(sub, 'events.out.tfevents.1');
    writeFileSync(path, bytes.subarray(0, cut));
    const first = new EventFolderReader(sub);
    const folded = fold([await first.read()]);
    const resumed = new EventFolderReader(sub, first.positions()); // a new process, say
    appendFileSync(path, bytes.subarray(cut));
    fold([await resumed.read()], folded);
    assert.deepEqual(points(folded), points(expected), `restart at ${cut}`);
    assert.deepEqual(folded.samples, expected.samples, `restart at ${cut}`);
  }
});

const lossAt = (step: number, loss: number, text?: string): TbEvent => ({
  wall_time: 1700000000 + step,
  step,
  values: [{ tag: 'loss', simple_value: loss }, ...(text ? [{ tag: 'generation', text }] : [])],
});

/** Replaces a file as a sync tool does: the new content written aside, then renamed over it (a new inode). */
function replaceEvents(path: string, events: TbEvent[]): void {
  const aside = `${path}.tmp`;
  writeFileSync(aside, '');
  writeEvents(aside, events);
  renameSync(aside, path);
}

test('one event file of several starts over: only it is read again, its rows are cut and re-read', async () => {
  const dir = scratch('tfevents-one-reset');
  const older = join(dir, 'events.out.tfevents.1.a');
  const newer = join(dir, 'events.out.tfevents.2.b');
  writeEvents(older, [lossAt(1, 4), lossAt(2, 3.5, 'old file 2')]);
  writeEvents(newer, [lossAt(3, 3), lossAt(4, 2.5, 'first 4'), lossAt(5, 2)]);
  const reader = new EventFolderReader(dir);
  const folded = fold([await reader.read()]);

  // The newer file replaced: shorter, with other values (a writer that started again at step 3).
  replaceEvents(newer, [lossAt(3, 3.25), lossAt(4, 2.75, 'second 4')]);
  const batch = await reader.read();
  assert.equal(batch.reset, false, 'the run does not start over');
  assert.deepEqual(batch.cut, { tables: { train: 3 }, samples: 4 }, "the newer file's rows are dropped");
  assert.deepEqual(
    batch.metrics.map((m) => m.step),
    [3, 4],
    'only the newer file is read again',
  );
  fold([batch], folded);
  assert.deepEqual(points(folded)['train:loss'], [
    [1, 4],
    [2, 3.5],
    [3, 3.25],
    [4, 2.75],
  ]);
  assert.deepEqual(
    folded.samples.map((s) => s.text),
    ['old file 2', 'second 4'],
  );

  // Truncated to nothing: its rows go, the older file's stay.
  writeFileSync(newer, '');
  fold([await reader.read()], folded);
  assert.deepEqual(points(folded)['train:loss'], [
    [1, 4],
    [2, 3.5],
  ]);
  // And it grows again from its start.
  writeEvents(newer, [lossAt(3, 1)]);
  fold([await reader.read()], folded);
  assert.deepEqual(points(folded)['train:loss'], [
    [1, 4],
    [2, 3.5],
    [3, 1],
  ]);
});

const evalAt = (step: number, loss: number): TbEvent => ({
  wall_time: 1700000000 + step,
  step,
  values: [{ tag: 'eval/loss', simple_value: loss }],
});

const steps = (from: number, to: number, loss: number, text?: (step: number) => string | undefined): TbEvent[] =>
  Array.from({ length: to - from + 1 }, (_, i) => lossAt(from + i, loss + i / 100, text?.(from + i)));

/** What the run holds, as the dashboard shows it: points per series, samples by step and text. */
function shown(folded: Folded): { points: ReturnType<typeof points>; samples: string[] } {
  const samples = folded.samples.map((s) => `${s.step} ${s.text}`).sort();
  const series = Object.entries(points(folded)).filter(([, pairs]) => pairs.length > 0); // an emptied table shows nothing
  return { points: Object.fromEntries(series), samples };
}

/** What a reader new to the folder reads now (the truth a followed run must end at). */
async function readFresh(dir: string): Promise<ReturnType<typeof shown>> {
  return shown(fold([await new EventFolderReader(dir).read()]));
}

interface Change {
  name: string;
  /** Changes the folder (files a, b, c in name order); a list: one reader pass after each. */
  steps: ((files: Record<'a' | 'b' | 'c', string>) => void)[];
}

// a: steps 1-7 (a sample at 3); b: steps 6-10, an eval at 8, a sample at 9; c: steps 11-15.
// In the run: a's 1-5 (b's step 6 replaces a's rows from 6 on), b's 6-10, c's 11-15.
const CHANGES: Change[] = [
  { name: 'the oldest file replaced by the same bytes', steps: [(f) => replaceEvents(f.a, steps(1, 7, 4, sampleAt3))] },
  { name: 'the oldest file replaced by other, fewer values', steps: [(f) => replaceEvents(f.a, steps(1, 3, 9))] },
  { name: 'a middle file replaced by the same bytes', steps: [(f) => replaceEvents(f.b, middle())] },
  { name: 'a middle file truncated to nothing', steps: [(f) => writeFileSync(f.b, '')] },
  { name: 'a middle file deleted', steps: [(f) => unlinkSync(f.b)] },
  { name: 'a middle file now starting earlier (4)', steps: [(f) => replaceEvents(f.b, steps(4, 10, 5))] },
  // a's rows 6 and 7 come back: b no longer replaces them.
  { name: 'a middle file now starting later (8)', steps: [(f) => replaceEvents(f.b, steps(8, 10, 5))] },
  {
    name: 'two files replaced in one pass',
    steps: [
      (f) => {
        replaceEvents(f.a, steps(1, 5, 7));
        replaceEvents(f.c, steps(11, 12, 7));
      },
    ],
  },
  {
    name: 'a middle file truncated, then written again over two passes',
    steps: [
      (f) => {
        writeFileSync(f.b, '');
        writeEvents(f.b, steps(6, 7, 6));
      },
      (f) => writeEvents(f.b, [...steps(8, 10, 6), evalAt(8, 6.5)]),
    ],
  },
];

function sampleAt3(step: number): string | undefined {
  return step === 3 ? 'a at 3' : undefined;
}

function middle(): TbEvent[] {
  return [...steps(6, 7, 5), evalAt(8, 5.5), ...steps(8, 10, 5, (step) => (step === 9 ? 'b at 9' : undefined))];
}

for (const change of CHANGES) {
  test(`one of several event files changes under the others' rows (${change.name}): the run ends as a fresh read, not started over`, async () => {
    const dir = scratch('tfevents-change');
    const files = {
      a: join(dir, 'events.out.tfevents.1.a'),
      b: join(dir, 'events.out.tfevents.2.b'),
      c: join(dir, 'events.out.tfevents.3.c'),
    };
    writeEvents(files.a, steps(1, 7, 4, sampleAt3));
    writeEvents(files.b, middle());
    writeEvents(files.c, steps(11, 15, 3));
    const reader = new EventFolderReader(dir);
    const folded = fold([await reader.read()]);
    for (const step of change.steps) {
      step(files);
      const batch = await reader.read();
      assert.equal(batch.reset, false, 'the run does not start over');
      const cut = batch.cut;
      assert.ok(cut, 'the rows from the lowest changed step are cut');
      for (const m of batch.metrics)
        assert.ok(m.step >= (cut.tables[kindOf(m)] ?? -Infinity), `step ${m.step} is not handed out again`);
      fold([batch], folded);
      assert.deepEqual(shown(folded), await readFresh(dir));
    }
  });
}

test('a file reset under a long later file: the later file is read again from a mark before the cut step', async () => {
  const dir = scratch('tfevents-mark');
  const older = join(dir, 'events.out.tfevents.1.a');
  const later = join(dir, 'events.out.tfevents.2.b');
  writeEvents(older, steps(2000, 2005, 9));
  writeEvents(later, steps(1, 3000, 3)); // about 150 KB: marks every 64 KiB
  const reader = new EventFolderReader(dir);
  const folded = fold([await reader.read()]);
  replaceEvents(older, steps(2000, 2002, 8));
  const batch = await reader.read();
  assert.deepEqual(batch.cut, { tables: { train: 2000 } });
  assert.deepEqual(
    batch.metrics.map((m) => m.step),
    [2000, 2001, 2002, ...Array.from({ length: 1001 }, (_, i) => 2000 + i)],
    "the replaced file's rows, then the later file's from step 2000 on",
  );
  fold([batch], folded);
  assert.deepEqual(shown(folded), await readFresh(dir));
  const laterFile = new EventFileReader(later);
  await laterFile.read();
  const start = laterFile.index.startFor({ tables: { train: 2000 } }, laterFile.offset);
  assert.ok(start > 64 * 1024, `read again from byte ${start}, not from the start`);
});

test('a folder reader resumed mid-file (follow --from) knows its rows from its position: a reset cuts them alone', async () => {
  const dir = scratch('tfevents-resumed-reset');
  const [older, newer] = ['events.out.tfevents.1.a', 'events.out.tfevents.2.b'].map((name) => join(dir, name));
  writeEvents(older, [lossAt(1, 4), lossAt(2, 3.9, 'a at 2')]);
  writeEvents(newer, [lossAt(3, 3), lossAt(4, 2.5)]);
  const first = new EventFolderReader(dir);
  const folded = fold([await first.read()]);
  writeEvents(newer, [lossAt(5, 2)]);
  const resumed = new EventFolderReader(dir, JSON.parse(JSON.stringify(first.positions()))); // as --from carries it
  fold([await resumed.read()], folded);
  replaceEvents(older, [lossAt(1, 5), lossAt(2, 4.5, 'a again')]);
  const batch = await resumed.read();
  assert.equal(batch.reset, false, 'not started over');
  assert.deepEqual(batch.cut, { tables: { train: 1 }, samples: 2 });
  fold([batch], folded);
  assert.deepEqual(shown(folded), await readFresh(dir));
});

test('a folder reader resumed from a position without its rows (an older follower) starts over on a reset', async () => {
  const dir = scratch('tfevents-resumed-unknown');
  const newer = join(dir, 'events.out.tfevents.2.b');
  writeEvents(join(dir, 'events.out.tfevents.1.a'), [lossAt(1, 4)]);
  writeEvents(newer, [lossAt(2, 3), lossAt(3, 2.5)]);
  const first = new EventFolderReader(dir);
  await first.read();
  const positions = Object.fromEntries(
    Object.entries(first.positions()).map(([name, { at, sent, open }]) => [name, { at, sent, open }]),
  );
  const resumed = new EventFolderReader(dir, positions);
  await resumed.read();
  replaceEvents(newer, [lossAt(2, 1)]);
  assert.equal((await resumed.read()).reset, true, 'the rows it did not read are unknown: they cannot be cut alone');
});

test('a cut right after a resume hands out again the rows between the resume offset and what was sent', async () => {
  const dir = scratch('tfevents-resumed-between');
  const [older, newer] = ['events.out.tfevents.1.a', 'events.out.tfevents.2.b'].map((name) => join(dir, name));
  writeEvents(older, [lossAt(1, 4)]);
  // The eval step stays open, so the position resumes before it: train steps 3 and 4 lie between.
  writeEvents(newer, [evalAt(2, 3.5), lossAt(3, 3), lossAt(4, 2.5)]);
  const first = new EventFolderReader(dir);
  const folded = fold([await first.read()]);
  const positions = first.positions();
  const { at, sent } = positions['events.out.tfevents.2.b'];
  assert.ok(at < sent, 'the position resumes before records already sent');
  const resumed = new EventFolderReader(dir, positions);
  replaceEvents(older, steps(1, 5, 9)); // under all of the newer file's rows
  const batch = await resumed.read();
  assert.equal(batch.reset, false);
  fold([batch], folded);
  assert.deepEqual(shown(folded), await readFresh(dir));
});
