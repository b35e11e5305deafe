// JSONL as people write it: a record needs only `step`; time comes from t, time, timestamp,
// wall_time or _timestamp (seconds or ms); nested objects are `a/b` series; a run without any time
// is said to have none (the dashboard leaves it off the time axes and its legend says so).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { forEachMetric, primaryLossField, recordTime } from '../../src/shared/metricFields';
import { RunStore } from '../../src/host/runs/store';
import { runHeader } from '../../src/host/panels/dashboardModel';
import { scratch, storeOnlyTarget } from '../helpers';

const target = storeOnlyTarget('fake', 'Fake');

async function observe(lines: string) {
  const dir = scratch('foreign-jsonl');
  writeFileSync(join(dir, 'metrics.jsonl'), lines);
  const store = new RunStore({ watch: false, pollMs: 0, aliveCheckMs: 0, flushMs: 60_000 });
  const key = store.addRun(target, dir);
  await store.refresh();
  await store.whenIdle();
  const data = store.get(key);
  store.dispose();
  assert.ok(data);
  return data;
}

const column = (values: Float64Array | undefined, length: number) => Array.from(values?.subarray(0, length) ?? []);

test('a PyTorch script logging only step and train/loss is read: no malformed lines, one chart, no time', async () => {
  const data = await observe('{"step": 1, "train/loss": 2.5}\n{"step": 2, "train/loss": 2.25, "note": "warmup"}\n');
  assert.deepEqual(data.summary.malformed, { metrics: 0, samples: 0, events: 0, system: 0, evals: 0 });
  const train = data.tables.get('train');
  assert.deepEqual(column(train?.step, 2), [1, 2]);
  assert.deepEqual(column(train?.fields.get('train/loss'), 2), [2.5, 2.25]);
  assert.deepEqual([...(train?.fields.keys() ?? [])], ['train/loss'], 'a label is not a series');
  assert.ok(column(train?.t, 2).every(Number.isNaN), 'no time: the rows have no place on time axes');
  assert.equal(runHeader(data, 0).timed, false, 'the dashboard is told the run has no time');
});

test('time from timestamp in seconds, nested objects flatten to a/b, Python NaN kept as a marker', async () => {
  const data = await observe(
    '{"step": 10, "timestamp": 1700000000.5, "train": {"loss": NaN, "acc": {"top1": 0.5}}, "tags": [1, 2]}\n' +
      '{"step": 20, "_timestamp": 1700000001250, "train": {"loss": 1.5}}\n',
  );
  const train = data.tables.get('train');
  assert.deepEqual(column(train?.t, 2), [1_700_000_000_500, 1_700_000_001_250], 'seconds and ms both become Unix ms');
  assert.deepEqual([...(train?.fields.keys() ?? [])].sort(), ['train/acc/top1', 'train/loss']);
  assert.ok(train?.loggedNaN.get('train/loss')?.has(0), 'the NaN is a logged marker');
  assert.equal(train?.fields.get('train/loss')?.[1], 1.5);
  assert.equal(runHeader(data, 0).timed, true);
});

test('time fields in order, `t` is Unix ms as the format says, deep nesting is cut off', () => {
  assert.equal(recordTime({ step: 1, t: 1000, time: 5 }), 1000);
  assert.equal(recordTime({ step: 1, time: 'yesterday', wall_time: 1_700_000_000 }), 1_700_000_000_000);
  assert.equal(recordTime({ step: 1 }), undefined);
  let deep: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < 50; i++) deep = { n: deep };
  const names: string[] = [];
  forEachMetric({ step: 1, deep, t: 5, time: 6, kind: 'train', x: 'Infinity' }, (name) => names.push(name));
  assert.deepEqual(names, ['x'], 'time fields and kind are not series; nesting past 8 levels is not followed');
});

test('the primary loss series: loss first, else the names other loggers give it; never val or aux losses', () => {
  assert.equal(primaryLossField(['grad_norm', 'loss', 'train/loss']), 'loss');
  assert.equal(primaryLossField(['lr', 'train/loss']), 'train/loss');
  assert.equal(
    primaryLossField(['train_loss_epoch', 'train_loss_step']),
    'train_loss_step',
    'per step before per epoch',
  );
  assert.equal(primaryLossField(['loss_step']), 'loss_step');
  assert.equal(primaryLossField(['Loss/train', 'Loss/test']), 'Loss/train', 'the PyTorch tutorial spelling');
  assert.equal(primaryLossField(['trainLoss']), 'trainLoss');
  assert.equal(primaryLossField(['val_loss', 'aux_loss', 'loss_scale', 'eval/loss']), undefined);
  assert.equal(primaryLossField([]), undefined);
});

test('the Runs view shows the last loss of a run whose logger names it train/loss', async () => {
  const data = await observe('{"step": 1, "train/loss": 2.5, "val_loss": 9}\n{"step": 2, "train/loss": 2.25}\n');
  assert.equal(data.summary.lastLoss, 2.25);
});
