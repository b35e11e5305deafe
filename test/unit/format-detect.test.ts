// "Open Run Folder…" on foreign logs: the runs of a folder are found (one per folder, three
// lightning_logs/version_* are three runs, Hugging Face checkpoint-N/ are part of their run), the
// store reads each with its format's reader, live appends arrive, Export Metrics as CSV has their
// values, and the Runs view groups the version_* runs under their folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeFound, findRuns } from '../../src/shared/node/formats/detect';
import { RunStore } from '../../src/host/runs/store';
import { metricsCsv } from '../../src/host/csv';
import { groupRuns } from '../../src/host/views/runGroups';
import type { RunChange, RunTarget } from '../../src/host/runs/types';
import { writeEvents } from '../formats/fixtures';
import { scratch, storeOnlyTarget, until } from '../helpers';

function localTarget(): RunTarget {
  return storeOnlyTarget('local', 'This machine');
}

function folderOfRuns(): string {
  const root = scratch('formats-detect');
  for (const v of [0, 1, 2]) {
    mkdirSync(join(root, 'lightning_logs', `version_${v}`), { recursive: true });
    writeFileSync(
      join(root, 'lightning_logs', `version_${v}`, 'metrics.csv'),
      `epoch,step,train_loss\n0,1,${v + 0.5}\n`,
    );
  }
  mkdirSync(join(root, 'tb', 'run_a'), { recursive: true });
  writeEvents(join(root, 'tb', 'run_a', 'events.out.tfevents.1.h'), [
    {
      wall_time: 1700000000,
      step: 1,
      values: [
        { tag: 'loss', simple_value: 4.5 },
        { tag: 'note', text: 'hello' },
      ],
    },
  ]);
  mkdirSync(join(root, 'hf', 'checkpoint-10'), { recursive: true });
  writeFileSync(
    join(root, 'hf', 'checkpoint-10', 'trainer_state.json'),
    JSON.stringify({ global_step: 10, log_history: [{ loss: 1.25, step: 10 }] }),
  );
  return root;
}

test('a folder of runs: each found once with its format, named by its path, described in one line', async () => {
  const root = folderOfRuns();
  const runs = await findRuns(root);
  assert.deepEqual(
    runs.map((r) => [r.relative, r.format]),
    [
      ['hf', 'trainer-state'],
      ['lightning_logs/version_0', 'csv'],
      ['lightning_logs/version_1', 'csv'],
      ['lightning_logs/version_2', 'csv'],
      ['tb/run_a', 'tfevents'],
    ],
  );
  assert.equal(
    describeFound(runs),
    '5 runs found: 1 × Hugging Face trainer state, 3 × CSV metrics log, 1 × TensorBoard event files.',
  );
  assert.deepEqual(await findRuns(scratch('formats-empty')), []);
});

test('the store reads every format, follows appends, exports them as CSV, and the view groups version_*', async () => {
  const root = folderOfRuns();
  const store = new RunStore({ watch: false, pollMs: 0, aliveCheckMs: 0, flushMs: 60_000 });
  try {
    const target = localTarget();
    const keys = (await findRuns(root)).map((r) => store.addRun(target, r.dir));
    await store.whenIdle();
    const data = keys.map((k) => store.get(k));
    const [hf, v0, , v2, tb] = data;
    assert.deepEqual(Array.from(hf?.tables.get('train')?.fields.get('loss')?.subarray(0, 1) ?? []), [1.25]);
    assert.deepEqual(Array.from(v2?.tables.get('train')?.fields.get('train_loss')?.subarray(0, 1) ?? []), [2.5]);
    assert.deepEqual(Array.from(tb?.tables.get('train')?.fields.get('loss')?.subarray(0, 1) ?? []), [4.5]);
    assert.deepEqual(
      tb?.samples.map((s) => [s.prompt, s.text]),
      [['note', 'hello']],
    );

    appendFileSync(join(root, 'lightning_logs', 'version_0', 'metrics.csv'), '0,2,0.25\n');
    await store.refresh();
    assert.deepEqual(Array.from(v0?.tables.get('train')?.fields.get('train_loss')?.subarray(0, 2) ?? []), [0.5, 0.25]);

    const csv = metricsCsv(data.filter((d) => d !== undefined));
    assert.match(csv, /tb\/run_a|run_a/);
    assert.match(csv, /,4\.5/);
    assert.match(csv, /,1\.25/);

    const entries = groupRuns(data.map((d) => d?.summary).filter((s) => s !== undefined));
    const group = entries.find((e) => e.kind === 'group');
    assert.ok(group?.kind === 'group');
    assert.equal(group.dir, join(root, 'lightning_logs'));
    assert.deepEqual(
      group.runs.map((r) => r.name),
      ['version_0', 'version_1', 'version_2'],
    );
    assert.equal(entries.length, 3); // hf, the lightning_logs group, tb/run_a
  } finally {
    store.dispose();
  }
});

test('the store drops only the rows and samples of the one event file that started over', async () => {
  const dir = scratch('formats-one-reset');
  const at = (step: number, loss: number, text?: string) => ({
    wall_time: 1700000000 + step,
    step,
    values: [{ tag: 'loss', simple_value: loss }, ...(text ? [{ tag: 'note', text }] : [])],
  });
  const newer = join(dir, 'events.out.tfevents.2.b');
  writeEvents(join(dir, 'events.out.tfevents.1.a'), [at(1, 4, 'kept'), at(2, 3.5)]);
  writeEvents(newer, [at(3, 3), at(4, 2.5, 'dropped')]);
  const store = new RunStore({ watch: false, pollMs: 0, aliveCheckMs: 0, flushMs: 60_000 });
  try {
    const key = store.addRun(localTarget(), dir);
    await store.whenIdle();
    writeFileSync(newer, '');
    writeEvents(newer, [at(5, 1)]);
    await store.refresh();
    const data = store.get(key);
    const train = data?.tables.get('train');
    assert.deepEqual(Array.from(train?.step.subarray(0, train.length) ?? []), [1, 2, 5]);
    assert.deepEqual(Array.from(train?.fields.get('loss')?.subarray(0, train?.length) ?? []), [4, 3.5, 1]);
    assert.deepEqual(
      data?.samples.map((s) => s.text),
      ['kept'],
    );
  } finally {
    store.dispose();
  }
});

test('a folder added before its run wrote a file: the store asks each refresh until a file tells the format', async () => {
  const [tb, csv, ours] = ['tb', 'csv', 'ours'].map((name) => join(scratch('formats-later'), name));
  for (const dir of [tb, csv, ours]) mkdirSync(dir);
  const store = new RunStore({ watch: false, pollMs: 0, aliveCheckMs: 0, flushMs: 60_000 });
  const changes: RunChange[] = [];
  store.onDidChange((c) => changes.push(c));
  try {
    const target = localTarget();
    const [tbKey, csvKey, oursKey] = [tb, csv, ours].map((dir) => store.addRun(target, dir));
    await store.refresh();
    const trainLoss = (key: string, field: string) => {
      const train = store.get(key)?.tables.get('train');
      return Array.from(train?.fields.get(field)?.subarray(0, train.length) ?? []);
    };
    assert.deepEqual(trainLoss(tbKey, 'loss'), [], 'nothing written yet');

    writeEvents(join(tb, 'events.out.tfevents.1.a'), [
      { wall_time: 1700000000, step: 1, values: [{ tag: 'loss', simple_value: 4 }] },
    ]);
    writeFileSync(join(csv, 'metrics.csv'), 'epoch,step,train_loss\n0,1,2.5\n');
    appendFileSync(join(ours, 'metrics.jsonl'), JSON.stringify({ step: 1, t: 1, kind: 'train', loss: 3 }) + '\n');
    store.flush();
    changes.length = 0;
    await store.refresh();
    await store.whenIdle();
    assert.deepEqual(trainLoss(tbKey, 'loss'), [4], 'the TensorBoard run, read by its format');
    assert.deepEqual(trainLoss(csvKey, 'train_loss'), [2.5], 'the CSV run, read by its format');
    assert.deepEqual(trainLoss(oursKey, 'loss'), [3], 'a folder that turned out ours: still read as ours');
    store.flush();
    assert.equal(changes.find((c) => c.key === tbKey)?.tablesFrom.get('train'), 0, 'views get the rows from the first');

    appendFileSync(join(csv, 'metrics.csv'), '0,2,2.25\n');
    await store.refresh();
    assert.deepEqual(trainLoss(csvKey, 'train_loss'), [2.5, 2.25], 'and its appends');
  } finally {
    store.dispose();
  }
});

test("a store that polls finds a folder's format by itself once the first file is written", async () => {
  const dir = scratch('formats-later-poll');
  const store = new RunStore({ pollMs: 50, aliveCheckMs: 0, flushMs: 10 });
  try {
    const key = store.addRun(localTarget(), dir);
    await store.whenIdle();
    writeFileSync(join(dir, 'metrics.csv'), 'epoch,step,train_loss\n0,1,2.5\n0,2,2.25\n');
    await until('the CSV rows', () => store.get(key)?.tables.get('train')?.length === 2);
  } finally {
    store.dispose();
  }
});
