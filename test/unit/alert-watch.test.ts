// The notifications of watched runs, as the run store changes (src/host/alerts/watch.ts, all of the
// notifier but the vscode toast): steelscope.notify all/problems/none, nothing said twice (an
// events file or a table re-read after a reset, a rule in two dashboards), history not announced,
// and the stale check on its timer.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { AlertWatch, HISTORY_MS, STALE_CHECK_MS } from '../../src/host/alerts/watch';
import { STALE_FACTOR, type Alert, type AlertRule, type NotifyLevel } from '../../src/host/alerts/alerts';
import { appendRecord, cutTable, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { Disposable, RunChange, RunData, RunKey, RunStoreApi } from '../../src/host/runs/types';
import type { EventRecord, RunStatus } from '../../src/shared/run';

const KEY = 'local::/runs/r';
const T0 = 1_700_000_000_000;

class FakeStore implements RunStoreApi {
  readonly runs = new Map<RunKey, RunData>();
  private readonly listeners = new Set<(change: RunChange) => void>();

  onDidChange(listener: (change: RunChange) => void): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  get(key: RunKey): RunData | undefined {
    return this.runs.get(key);
  }

  /** Tells the listeners that `key` changed (as the store does after each batch); `tablesFrom`: rows rewritten. */
  changed(key = KEY, removed = false, tablesFrom = new Map<string, number>()): void {
    for (const l of this.listeners) l({ key, summaryChanged: true, tablesFrom, removed });
  }
}

/** One run as the store holds it; mutate it and call store.changed(). */
function addRun(store: FakeStore, status: RunStatus = 'running'): RunData {
  const data: RunData = {
    summary: {
      key: KEY,
      hostId: 'local',
      hostLabel: 'This machine',
      dir: '/runs/r',
      name: 'r',
      status,
      checkpoints: [],
      malformed: { metrics: 0, samples: 0, events: 0 },
    },
    tables: new Map([['train', newSeriesTable('train')]]),
    samples: [],
    events: [],
    evals: [],
  };
  store.runs.set(KEY, data);
  return data;
}

function train(data: RunData, step: number, fields: Record<string, number>, t = T0 + step * 1000): void {
  const table = data.tables.get('train');
  assert.ok(table);
  appendRecord(table, { step, t, ...fields });
}

const nanEvent = (step: number, t = T0 + step * 1000): EventRecord => ({
  kind: 'nan',
  step,
  t,
  level: 'error',
  message: 'loss is NaN',
});

interface Harness {
  store: FakeStore;
  shown: Alert[];
  watch: AlertWatch;
  setLevel(level: NotifyLevel): void;
  clock: { now: number };
}

function watching(rules: AlertRule[] = [], level: NotifyLevel = 'all'): Harness {
  const store = new FakeStore();
  const shown: Alert[] = [];
  const clock = { now: T0 };
  let current = level;
  const watch = new AlertWatch(store, {
    rules: () => rules,
    level: () => current,
    show: (key, alerts) => {
      assert.equal(key, KEY);
      assert.ok(alerts.length > 0, 'never called with nothing to show');
      shown.push(...alerts);
    },
    now: () => clock.now,
  });
  return { store, shown, watch, clock, setLevel: (l) => (current = l) };
}

/** A watched run that logs a nan event and then finishes, under `level`: the kinds shown. */
function nanThenFinish(level: NotifyLevel): string[] {
  const { store, shown, watch } = watching([], level);
  const data = addRun(store);
  store.changed(); // first seen: watched from here
  train(data, 1, { loss: 2 });
  data.events = [nanEvent(1)];
  store.changed();
  data.summary.status = 'finished';
  store.changed();
  watch.dispose();
  return shown.map((a) => `${a.kind}:${a.problem ? 'problem' : 'news'}`);
}

test('steelscope.notify: all shows the nan event and the finish, problems only the nan, none nothing', () => {
  assert.deepEqual(nanThenFinish('all'), ['nan:problem', 'finished:news']);
  assert.deepEqual(nanThenFinish('problems'), ['nan:problem']);
  assert.deepEqual(nanThenFinish('none'), []);
});

test('what a run had written when first seen is history, and so is an event written long before', () => {
  const { store, shown, watch } = watching();
  const data = addRun(store);
  data.events = [nanEvent(1, T0 - 1000)];
  store.changed();
  assert.equal(shown.length, 0, 'the nan event was there before we watched');
  // An event read later but written long before the run was first seen (a slow first read) is history too.
  data.events = [...data.events, nanEvent(2, T0 - HISTORY_MS - 1)];
  store.changed();
  assert.equal(shown.length, 0);
  data.events = [...data.events, nanEvent(3, T0 + 5)];
  store.changed();
  assert.deepEqual(
    shown.map((a) => a.message),
    ['Run r, step 3: loss is NaN'],
  );
  watch.dispose();
});

test('an events file re-read after a reset does not announce its events again', () => {
  const { store, shown, watch } = watching();
  const data = addRun(store);
  store.changed();
  data.events = [nanEvent(4)];
  store.changed();
  // events.jsonl replaced (a sync): the store drops its events, then reads them back in two passes.
  data.events = [];
  store.changed();
  data.events = [nanEvent(4)];
  store.changed();
  data.events = [nanEvent(4), { ...nanEvent(9), kind: 'spike', message: 'loss spiked' }];
  store.changed();
  assert.deepEqual(
    shown.map((a) => a.kind),
    ['nan', 'spike'],
  );
  watch.dispose();
});

const gradRule: AlertRule = { kind: 'train', field: 'grad_norm', op: 'above', value: 10, scale: 'absolute' };

test('a rule fires once when its metric crosses it, not on every record; in two dashboards still once', () => {
  const { store, shown, watch } = watching([gradRule, { ...gradRule }]);
  const data = addRun(store);
  train(data, 1, { grad_norm: 1 });
  store.changed();
  for (const [step, g] of [
    [2, 5],
    [3, 12],
    [4, 15],
    [5, 20],
    [6, 30],
  ]) {
    train(data, step, { grad_norm: g });
    store.changed();
  }
  assert.deepEqual(
    shown.map((a) => a.message),
    ['Run r, step 3: grad_norm = 12 crossed grad_norm > 10 (10).'],
  );
  // Back below, then above again: a new crossing.
  train(data, 7, { grad_norm: 3 });
  train(data, 8, { grad_norm: 11 });
  store.changed();
  assert.equal(shown.length, 2);
  assert.match(shown[1].message, /step 8/);
  watch.dispose();
});

test('a table re-read from the start after a reset does not fire its crossings again', () => {
  const { store, shown, watch } = watching([gradRule]);
  const data = addRun(store);
  store.changed();
  const rows = [1, 12, 3, 14].map((g, i) => ({ step: i + 1, g }));
  for (const { step, g } of rows) train(data, step, { grad_norm: g });
  store.changed();
  assert.equal(shown.length, 2, 'two crossings');
  // metrics.jsonl replaced: the table starts over and fills again, in passes.
  const table = newSeriesTable('train');
  data.tables.set('train', table);
  store.changed(KEY, false, new Map([['train', 0]]));
  for (const [i, { step, g }] of rows.entries()) {
    train(data, step, { grad_norm: g });
    store.changed(KEY, false, new Map([['train', i]]));
  }
  assert.equal(shown.length, 2, JSON.stringify(shown));
  watch.dispose();
});

test('stale: checked every STALE_CHECK_MS; said once an active run is silent STALE_FACTOR x its interval', () => {
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const { store, shown, watch, clock } = watching([], 'problems');
    const data = addRun(store);
    store.changed();
    for (let step = 1; step <= 4; step++) train(data, step, { loss: 1 }, T0 + step * 1000);
    store.changed();
    clock.now = T0 + 4000 + STALE_FACTOR * 1000 - 1;
    mock.timers.tick(STALE_CHECK_MS);
    assert.equal(shown.length, 0, 'not yet');
    clock.now += 1;
    mock.timers.tick(STALE_CHECK_MS - 1);
    assert.equal(shown.length, 0, 'only on the timer');
    mock.timers.tick(1);
    assert.deepEqual(
      shown.map((a) => a.kind),
      ['stale'],
    );
    assert.match(shown[0].message, /has written nothing for 10 s \(usually every 1 s\)/);
    clock.now += 60_000;
    mock.timers.tick(STALE_CHECK_MS * 3);
    assert.equal(shown.length, 1, 'once per silence');
    watch.dispose();
    mock.timers.tick(STALE_CHECK_MS * 3);
    assert.equal(shown.length, 1, 'no timer after dispose');
  } finally {
    mock.timers.reset();
  }
});

test('a finished run is not stale; a removed run is forgotten', () => {
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const { store, shown, watch, clock } = watching();
    const data = addRun(store);
    store.changed();
    for (let step = 1; step <= 4; step++) train(data, step, { loss: 1 });
    data.summary.status = 'finished';
    store.changed();
    assert.deepEqual(
      shown.map((a) => a.kind),
      ['finished'],
    );
    clock.now += 3_600_000;
    mock.timers.tick(STALE_CHECK_MS);
    assert.equal(shown.length, 1);
    store.runs.delete(KEY);
    store.changed(KEY, true);
    mock.timers.tick(STALE_CHECK_MS);
    assert.equal(shown.length, 1);
    watch.dispose();
  } finally {
    mock.timers.reset();
  }
});

test('a resumed run rewriting earlier steps: its new records count (rules see them, it is not stale)', () => {
  mock.timers.enable({ apis: ['setInterval'] });
  try {
    const { store, shown, watch, clock } = watching([gradRule]);
    const data = addRun(store);
    store.changed();
    for (let step = 1; step <= 8; step++) train(data, step, { grad_norm: 1 }, T0 + step * 1000);
    store.changed();
    // Resumed from step 4's checkpoint a minute later: steps 5.. again, with new records and times.
    const table = data.tables.get('train');
    assert.ok(table);
    const resumedAt = T0 + 60_000;
    const from = cutTable(table, 5);
    for (let step = 5; step <= 7; step++)
      train(data, step, { grad_norm: step === 6 ? 50 : 1 }, resumedAt + step * 1000);
    store.changed(KEY, false, new Map([['train', from]]));
    assert.deepEqual(
      shown.map((a) => a.message),
      ['Run r, step 6: grad_norm = 50 crossed grad_norm > 10 (10).'],
    );
    clock.now = resumedAt + 7000 + 5000;
    mock.timers.tick(STALE_CHECK_MS);
    assert.equal(shown.length, 1, 'records came 5 s ago: not stale');
    watch.dispose();
  } finally {
    mock.timers.reset();
  }
});

test('"Run … finished" names the run as the Runs view does, not by the folder it was first seen as', () => {
  const { store, shown, watch } = watching();
  const data = addRun(store);
  // The store tells of a run before its run.json is read: the summary names it by its folder then.
  data.summary.name = 'tiny-20261202-132600';
  store.changed();
  data.summary.name = 'my poetry run'; // run.json read: its name
  store.changed();
  data.summary.status = 'finished';
  store.changed();
  assert.deepEqual(
    shown.map((a) => a.message),
    ['Run my poetry run finished.'],
  );
  watch.dispose();
});
