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
import type { RunTarget } from '../../src/host/runs/types';
import { writeEvents } from '../formats/fixtures';
import { scratch, storeOnlyTarget } from '../helpers';

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
