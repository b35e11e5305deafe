// CSV metric logs (Lightning/Fabric/litgpt CSVLogger, our export): each non-empty numeric cell is a
// point at its row's step; rows appended live are read; a cut last row waits for its newline; a
// rewritten file with a wider header starts over; a reader resumed past the header still knows it;
// a stray quote costs one malformed row, not the rest of the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CsvFileReader } from '../../src/shared/node/formats/csv';
import { MAX_ROW_LINES } from '../../src/shared/formats/csv';
import { fold, points } from '../formats/fixtures';
import { scratch } from '../helpers';

// As Lightning's CSVLogger writes it: csv.DictWriter over the union of keys, blank for missing.
const LIGHTNING = [
  'epoch,step,train_loss,lr-AdamW,val_loss',
  '0,49,2.5,0.001,',
  '0,99,2.25,0.002,',
  '0,99,,,2.375',
  '1,149,nan,0.003,',
  '',
].join('\n');

test('a Lightning metrics.csv: every numeric cell is a point, validation columns in the eval table', async () => {
  const path = join(scratch('csv-lightning'), 'metrics.csv');
  writeFileSync(path, LIGHTNING);
  const folded = fold([await new CsvFileReader(path).read()]);
  assert.deepEqual(points(folded), {
    'train:epoch': [
      [49, 0],
      [99, 0],
      [149, 1],
    ],
    'train:train_loss': [
      [49, 2.5],
      [99, 2.25],
    ], // and a logged NaN at 149 (below)
    'train:lr-AdamW': [
      [49, 0.001],
      [99, 0.002],
      [149, 0.003],
    ],
    'eval:val_loss': [[99, 2.375]],
  });
  const train = folded.tables.get('train');
  assert.ok(train);
  assert.ok(train.loggedNaN.get('train_loss')?.has(2), 'nan is a logged NaN marker');
  assert.ok(Number.isNaN(train.t[0]), 'no time column: the wall time is unknown');
});

test('rows appended live, cut at every byte of the last row, are read once complete', async () => {
  const dir = scratch('csv-cut');
  const full = LIGHTNING + '1,199,1.5,0.004,\n';
  const expected = points(fold([await readText(join(dir, 'full.csv'), full)]));
  const lastStart = LIGHTNING.length;
  for (let cut = lastStart; cut < full.length; cut++) {
    const path = join(dir, `m${cut}.csv`);
    writeFileSync(path, full.slice(0, cut));
    const reader = new CsvFileReader(path);
    const folded = fold([await reader.read()]);
    assert.equal(reader.offset, lastStart, `cut at ${cut}`);
    appendFileSync(path, full.slice(cut));
    fold([await reader.read()], folded);
    assert.deepEqual(points(folded), expected, `cut at ${cut}`);
  }
  assert.deepEqual(expected['train:train_loss'], [
    [49, 2.5],
    [99, 2.25],
    [199, 1.5],
  ]);
});

async function readText(path: string, text: string) {
  writeFileSync(path, text);
  return new CsvFileReader(path).read();
}

test('a reader resumed at an offset reads the header from the first line', async () => {
  const path = join(scratch('csv-resume'), 'metrics.csv');
  writeFileSync(path, LIGHTNING);
  const offset = LIGHTNING.indexOf('0,99,,,');
  const folded = fold([await new CsvFileReader(path, { at: offset, sent: offset }).read()]);
  assert.deepEqual(points(folded)['eval:val_loss'], [[99, 2.375]]);
  assert.deepEqual(points(folded)['train:lr-AdamW'], [[149, 0.003]]);
});

test('a file rewritten with a wider header starts over with the new columns', async () => {
  const path = join(scratch('csv-header'), 'metrics.csv');
  writeFileSync(path, 'step,loss\n1,2.5\n2,2.25\n');
  const reader = new CsvFileReader(path);
  const folded = fold([await reader.read()]);
  writeFileSync(path, 'step,loss,grad_norm\n1,2.5,\n2,2.25,\n3,2.0,0.75\n');
  const batch = await reader.read();
  assert.ok(batch.reset);
  fold([batch], folded);
  assert.deepEqual(points(folded), {
    'train:loss': [
      [1, 2.5],
      [2, 2.25],
      [3, 2],
    ],
    'train:grad_norm': [[3, 0.75]],
  });
});

test('our own export (run, kind, step, t in ms) reads back into its tables with wall times', async () => {
  const path = join(scratch('csv-export'), 'export.csv');
  writeFileSync(
    path,
    'run,kind,step,t,loss,eval_loss\nr,train,1,1700000000000,3,\nr,eval,1,1700000001000,,2.5\nr,train,2,1700000002000,2.75,\n',
  );
  const folded = fold([await new CsvFileReader(path).read()]);
  assert.deepEqual(points(folded), {
    'train:loss': [
      [1, 3],
      [2, 2.75],
    ],
    'eval:eval_loss': [[1, 2.5]],
  });
  assert.equal(folded.tables.get('train')?.t[1], 1700000002000);
});

test('a row without a step is counted as malformed; quoted cells are read', async () => {
  const path = join(scratch('csv-bad'), 'metrics.csv');
  writeFileSync(path, 'step,"loss, smoothed"\n1,"2.5"\n,3\nx,4\n2,2\n');
  const folded = fold([await new CsvFileReader(path).read()]);
  assert.deepEqual(points(folded), {
    'train:loss, smoothed': [
      [1, 2.5],
      [2, 2],
    ],
  });
  assert.equal(folded.malformed, 2);
});

/**
 * For every line boundary of `text`: a reader reads the file cut there, a second reader resumes at
 * the first one's position once the rest is appended; together they give `expected` and count
 * `malformed` bad rows once.
 */
async function assertRestartsLoseNothing(
  dir: string,
  text: string,
  expected: ReturnType<typeof points>,
  malformed: number,
): Promise<void> {
  const starts = [...text.matchAll(/\n/g)].map((m) => (m.index ?? 0) + 1);
  for (const cut of starts) {
    const path = join(dir, `m${cut}.csv`);
    writeFileSync(path, text.slice(0, cut));
    const first = new CsvFileReader(path);
    const folded = fold([await first.read()]);
    const resumed = new CsvFileReader(path, first.positions()[`m${cut}.csv`]);
    appendFileSync(path, text.slice(cut));
    fold([await resumed.read()], folded);
    assert.deepEqual(points(folded), expected, `restart at ${cut}`);
    assert.equal(folded.malformed, malformed, `restart at ${cut}: bad rows counted once`);
  }
}

test('a reader restarted at its position after any row loses and repeats nothing', async () => {
  const dir = scratch('csv-restart');
  const text = LIGHTNING + '1,149,,,1.75\n1,199,1.5,0.004,\n';
  const expected = points(fold([await readText(join(dir, 'full.csv'), text)]));
  await assertRestartsLoseNothing(dir, text, expected, 0);
});

test('a quoted cell holding newlines (RFC 4180) is one row; cut inside it, the row waits for the rest', async () => {
  const dir = scratch('csv-quoted-newline');
  const head = 'step,note,train_loss\n1,"plain",2.5\n';
  const last = '2,"line one\nline ""two"", still\r\nquoted\n",2.25\n';
  const full = head + last + '3,,2\n';
  const expected = {
    'train:train_loss': [
      [1, 2.5],
      [2, 2.25],
      [3, 2],
    ],
  };
  const whole = fold([await readText(join(dir, 'full.csv'), full)]);
  assert.deepEqual(points(whole), expected);
  assert.equal(whole.malformed, 0, 'the lines inside the quoted cell are not rows');
  for (let cut = head.length; cut < head.length + last.length; cut++) {
    const path = join(dir, `m${cut}.csv`);
    writeFileSync(path, full.slice(0, cut));
    const reader = new CsvFileReader(path);
    const folded = fold([await reader.read()]);
    assert.equal(reader.offset, Buffer.byteLength(head), `cut at ${cut}: the partial quoted row waits`);
    assert.deepEqual(points(folded), { 'train:train_loss': [[1, 2.5]] }, `cut at ${cut}`);
    appendFileSync(path, full.slice(cut));
    fold([await reader.read()], folded);
    assert.deepEqual(points(folded), expected, `cut at ${cut}, then the rest`);
    assert.equal(folded.malformed, 0, `cut at ${cut}`);
  }
});

/** Rows `step,loss` for steps from..to, loss step/1000. */
const rows = (from: number, to: number): string =>
  Array.from({ length: to - from + 1 }, (_, i) => `${from + i},${(from + i) / 1000}\n`).join('');

const lossPoints = (steps: number[]): [number, number][] => steps.map((step) => [step, step / 1000]);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test(`a quoted cell spanning ${MAX_ROW_LINES} lines is still one row`, async () => {
  const text = Array.from({ length: MAX_ROW_LINES }, (_, i) => `line ${i}`).join('\n');
  const path = join(scratch('csv-long-cell'), 'metrics.csv');
  const batch = await readText(path, `step,note,loss\n1,"${text}",0.001\n2,,0.002\n`);
  assert.deepEqual(points(fold([batch])), { 'train:loss': lossPoints([1, 2]) });
  assert.deepEqual([batch.malformed, batch.problem], [0, undefined]);
});

test('a stray quote that never closes: its row is malformed, said once, and the rows after it (live too) are read', async () => {
  const path = join(scratch('csv-stray-quote'), 'metrics.csv');
  const broken = '4,"oops\n';
  writeFileSync(path, 'step,loss\n' + rows(1, 3) + broken + rows(5, 20));
  const reader = new CsvFileReader(path);
  const folded = fold([await reader.read()]);
  assert.deepEqual(
    points(folded),
    { 'train:loss': lossPoints([1, 2, 3]) },
    'the rows after it wait: it may still close',
  );
  const brokenAt = Buffer.byteLength('step,loss\n' + rows(1, 3));
  assert.equal(reader.offset, brokenAt);

  // The quote is still open MAX_ROW_LINES lines on: its line is skipped, the rest are rows.
  appendFileSync(path, rows(21, 4 + MAX_ROW_LINES));
  const resynced = await reader.read();
  fold([resynced], folded);
  assert.deepEqual(points(folded), { 'train:loss': lossPoints([1, 2, 3, ...range(5, 4 + MAX_ROW_LINES)]) });
  assert.equal(resynced.malformed, 1);
  assert.match(
    resynced.problem ?? '',
    new RegExp(
      `metrics\\.csv: the row at byte ${brokenAt} opens a quoted cell that is not closed within ${MAX_ROW_LINES} lines`,
    ),
  );

  // Rows appended live after it arrive on the next read, one by one; nothing is said again.
  for (const step of [5 + MAX_ROW_LINES, 6 + MAX_ROW_LINES]) {
    appendFileSync(path, rows(step, step));
    const live = await reader.read();
    assert.deepEqual(
      live.metrics.map((m) => m.step),
      [step],
    );
    assert.deepEqual([live.malformed, live.problem], [0, undefined]);
  }
});

test('a reader restarted at its position anywhere around a stray quote loses and repeats nothing', async () => {
  const dir = scratch('csv-stray-restart');
  const text = 'step,loss\n' + rows(1, 2) + '3,"oops\n' + rows(4, 3 + MAX_ROW_LINES);
  const expected = points(fold([await readText(join(dir, 'full.csv'), text)]));
  assert.deepEqual(expected, { 'train:loss': lossPoints([1, 2, ...range(4, 3 + MAX_ROW_LINES)]) });
  await assertRestartsLoseNothing(dir, text, expected, 1);
});
