// The dashboard's Evals section, its pure parts: where each macro average goes on the x axis the
// other charts use (the host's stepX: the step, or its train record's tokens and time), the chart's
// x-range, the table's step choices and its rows at a chosen step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendRecord, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunData } from '../../src/host/runs/types';
import { MACRO_SUBJECT, type EvalRecord } from '../../src/shared/eval';
import { DEFAULT_VIEW, type ViewState } from '../../src/shared/protocol';
import type { XAxis } from '../../src/shared/series';
import { computeChartPayload } from '../../src/host/panels/dashboardModel';
import { RunModel } from '../../webview/dashboard/data';
import { evaluatedSteps, evalLines, evalsExtent, subjectRows } from '../../webview/dashboard/evalsModel';
import type { Theme } from '../../webview/dashboard/theme';

const T0 = 1.7e12;
const THEME: Theme = { runs: ['red'], bg: 'black', fg: 'white', muted: 'grey', grid: 'grey', nan: 'red', events: {} };

/** Two subjects and their average at `step`; the eval ran at `t` (Evaluate Checkpoint… may run it much later). */
function evaluation(step: number, acc: number, t = T0 + 1e9, task = 'poetry-mc'): EvalRecord[] {
  return [
    { step, t, task, subject: 'author', n: 100, acc, stderr: 0.05 },
    { step, t, task, subject: 'next_line', n: 100, acc: acc + 0.1, stderr: 0.05 },
    { step, t, task, subject: MACRO_SUBJECT, n: 200, acc: acc + 0.05, stderr: 0.035 },
  ];
}

/** A run whose train records log steps 1..400 (every 10th), 256 tokens a step, a second a step. */
function trainedRun(evals: EvalRecord[], trained = true): RunData {
  const train = newSeriesTable('train');
  if (trained)
    for (let step = 10; step <= 400; step += 10)
      appendRecord(train, { step, t: T0 + step * 1000, kind: 'train', loss: 1, tokens: step * 256 });
  return {
    summary: {
      key: 'local::/runs/a',
      hostId: 'local',
      hostLabel: 'this machine',
      dir: '/runs/a',
      name: 'a',
      status: 'finished',
      checkpoints: [],
      malformed: { metrics: 0, samples: 0, events: 0 },
    },
    tables: trained ? new Map([['train', train]]) : new Map(),
    samples: [],
    events: [],
    evals,
  };
}

/** The run as the webview holds it after the host's snapshot on `axis`. */
function held(data: RunData, view: Partial<ViewState> = {}): RunModel {
  return RunModel.fromSnapshot(JSON.parse(JSON.stringify(computeChartPayload(data, { ...DEFAULT_VIEW, ...view }))));
}

const xsOn = (data: RunData, xAxis: XAxis, logX = false) =>
  evalLines([held(data, { xAxis })], THEME, logX).map((l) => l.points.map((p) => [p.step, p.x]));

test('each macro average sits where its step is on every x axis: the train record of that step, not when the eval ran', () => {
  const data = trainedRun([...evaluation(0, 0.2), ...evaluation(200, 0.3), ...evaluation(400, 0.4)]);
  assert.deepEqual(xsOn(data, 'step'), [
    [
      [0, 0],
      [200, 200],
      [400, 400],
    ],
  ]);
  assert.deepEqual(xsOn(data, 'tokens'), [
    [
      [0, 0],
      [200, 200 * 256],
      [400, 400 * 256],
    ],
  ]);
  // The run starts at its first train record (step 10); step 0 is placed at that start.
  assert.deepEqual(xsOn(data, 'wall'), [
    [
      [0, T0 + 10_000],
      [200, T0 + 200_000],
      [400, T0 + 400_000],
    ],
  ]);
  const start = T0 + 10_000;
  assert.deepEqual(xsOn(data, 'relative'), [
    [
      [0, 0],
      [200, T0 + 200_000 - start],
      [400, T0 + 400_000 - start],
    ],
  ]);
  // A log x axis has no place for 0, as the other charts leave step 0 out.
  assert.deepEqual(xsOn(data, 'step', true), [
    [
      [200, 200],
      [400, 400],
    ],
  ]);
});

test('a step between logged train records takes the last one before it; a run without train records has no place off the step axis', () => {
  const between = trainedRun(evaluation(205, 0.3));
  assert.deepEqual(xsOn(between, 'tokens'), [[[205, 200 * 256]]]);
  const untrained = trainedRun(evaluation(300, 0.3), false);
  assert.deepEqual(xsOn(untrained, 'step'), [[[300, 300]]]);
  assert.deepEqual(xsOn(untrained, 'tokens'), []);
  assert.deepEqual(xsOn(untrained, 'wall'), []);
  // The table still lists it.
  assert.equal(subjectRows([held(untrained, { xAxis: 'wall' })]).length, 3);
});

test("the Evals chart spans the other charts' x-range, widened to its own points", () => {
  const lines = evalLines([held(trainedRun([...evaluation(0, 0.2), ...evaluation(400, 0.4)]))], THEME);
  assert.deepEqual(evalsExtent(lines, [10, 300]), [0, 400]);
  assert.deepEqual(evalsExtent(lines, [0, 1000]), [0, 1000]);
  assert.deepEqual(evalsExtent(lines, null), [0, 400]);
  assert.equal(evalsExtent([], null), null);
});

test('the table: its steps newest first; at a chosen step each run and task shows its newest evaluation at or before it, with the 95% interval', () => {
  const a = held(trainedRun([...evaluation(0, 0.2), ...evaluation(200, 0.3), ...evaluation(400, 0.4)]));
  const bData = trainedRun(evaluation(300, 0.5));
  bData.summary = { ...bData.summary, key: 'local::/runs/b', name: 'b' };
  const b = held(bData);
  assert.deepEqual(evaluatedSteps([a, b]), [400, 300, 200, 0]);
  const at = (step: number | null) =>
    subjectRows([a, b], step).map((r) => [r.run, r.subject, r.step, r.acc, r.interval]);
  assert.deepEqual(at(null), [
    ['a', 'author', '400', '40.0%', '30.2% – 49.8%'],
    ['a', 'next_line', '400', '50.0%', '40.2% – 59.8%'],
    ['a', '(average)', '400', '45.0%', '38.1% – 51.9%'],
    ['b', 'author', '300', '50.0%', '40.2% – 59.8%'],
    ['b', 'next_line', '300', '60.0%', '50.2% – 69.8%'],
    ['b', '(average)', '300', '55.0%', '48.1% – 61.9%'],
  ]);
  assert.deepEqual(
    at(200).map((r) => r.slice(0, 4)),
    [
      ['a', 'author', '200', '30.0%'],
      ['a', 'next_line', '200', '40.0%'],
      ['a', '(average)', '200', '35.0%'],
    ],
    'b was not evaluated by step 200',
  );
  assert.deepEqual(
    at(0).map((r) => r[3]),
    ['20.0%', '30.0%', '25.0%'],
  );
});
