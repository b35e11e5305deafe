import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHostMessage, DEFAULT_VIEW, type HostMessage, type ViewState } from '../../src/shared/protocol';
import { appendRecord, kindOf, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunChange, RunData, RunStoreApi, SeriesTable } from '../../src/host/runs/types';
import type { EventRecord, MetricRecord, SampleRecord } from '../../src/shared/run';
import type { EvalRecord } from '../../src/shared/eval';
import { computeChartPayload, DashboardModel } from '../../src/host/panels/dashboardModel';
import { DashboardData } from '../../webview/dashboard/data';

// The snapshot/delta contract between the host's DashboardModel and the webview's DashboardData:
// what a dashboard shows after any sequence of deltas equals what a fresh snapshot shows.

class FakeStore implements RunStoreApi {
  readonly runs = new Map<string, RunData>();
  onDidChange() {
    return { dispose() {} };
  }
  get(key: string) {
    return this.runs.get(key);
  }
}

function runData(
  key: string,
): RunData & { tables: Map<string, SeriesTable>; samples: SampleRecord[]; events: EventRecord[]; evals: EvalRecord[] } {
  return {
    summary: {
      key,
      hostId: 'local',
      hostLabel: 'this machine',
      dir: '/r',
      name: 'r',
      status: 'running',
      checkpoints: [],
      malformed: { metrics: 2, samples: 0, events: 0 },
    },
    tables: new Map(),
    samples: [],
    events: [],
    evals: [],
  };
}

function append(data: RunData, records: MetricRecord[]): Map<string, number> {
  const from = new Map<string, number>();
  for (const r of records) {
    const kind = kindOf(r);
    let table = data.tables.get(kind);
    if (!table) data.tables.set(kind, (table = newSeriesTable(kind)));
    const row = appendRecord(table, r);
    from.set(kind, Math.min(from.get(kind) ?? Infinity, row));
  }
  return from;
}

const train = (step: number): MetricRecord => ({
  step,
  t: 1e12 + step * 1000,
  kind: 'train',
  loss: step === 77 ? 'NaN' : 5 / (1 + step / 100) + Math.sin(step),
  lr: 1e-3,
  grad_norm: 1 + Math.cos(step),
  tokens: step * 512,
});

function heldPoints(d: DashboardData) {
  return [...d.runs.values()].map((r) =>
    [...r.series.entries()].map(([id, s]) => [id, s.raw.pts, s.smooth?.pts ?? null, s.markers.pts]),
  );
}

for (const view of [
  DEFAULT_VIEW,
  { ...DEFAULT_VIEW, xAxis: 'tokens', smoothing: 0 } as ViewState,
  { ...DEFAULT_VIEW, xAxis: 'relative' } as ViewState,
  { ...DEFAULT_VIEW, xAxis: 'wall', smoothing: 0 } as ViewState,
]) {
  test(`deltas applied in order give what a fresh snapshot gives (${view.xAxis}, smoothing ${view.smoothing})`, () => {
    const store = new FakeStore();
    const data = runData('k');
    store.runs.set('k', data);
    append(
      data,
      Array.from({ length: 500 }, (_, i) => train(i)),
    );
    const model = new DashboardModel(store, ['k'], view, 400);
    const webview = new DashboardData();
    webview.snapshot(JSON.parse(JSON.stringify(model.snapshot())));
    let step = 500;
    const kinds: string[] = [];
    for (let round = 0; round < 30; round++) {
      const records = Array.from({ length: 37 + round * 13 }, () => train(step++));
      if (round % 5 === 0) records.push({ step: step - 3, t: 1e12 + step * 1000, kind: 'eval', loss: 2 });
      const change: RunChange = { key: 'k', summaryChanged: round % 7 === 0, tablesFrom: append(data, records) };
      if (round === 10) {
        data.samples.push({ step, t: 0, prompt: 'p', text: 't', temperature: 1, top_k: 0, top_p: 1, seed: 1 });
        change.samplesFrom = 0;
      }
      if (round % 8 === 3) {
        change.evalsFrom = data.evals.length;
        for (const subject of ['author', '_average'])
          data.evals.push({ step, t: 0, task: 'poetry-mc', subject, n: 200, acc: round / 40, stderr: 0.03 });
      }
      assert.equal(model.accept(change), true);
      const m = JSON.parse(JSON.stringify(model.next())) as HostMessage<'snapshot' | 'delta'>;
      const checked = checkHostMessage(m);
      assert.ok(checked.ok, checked.ok ? '' : checked.error);
      kinds.push(m.type);
      if (m.type === 'snapshot') webview.snapshot(m);
      else assert.notEqual(webview.delta(m), null, `delta ${m.seq} applies`);
    }
    assert.ok(data.tables.get('train')!.length > 4000, 'grew past several stride changes');
    assert.ok(
      kinds.every((k) => k === 'delta'),
      'appends travel as deltas',
    );
    const fresh = new DashboardData();
    fresh.snapshot(JSON.parse(JSON.stringify(new DashboardModel(store, ['k'], view, 400).snapshot())));
    assert.deepEqual(heldPoints(webview), heldPoints(fresh));
    assert.equal(webview.runs.get('k')!.samples.length, 1);
    assert.deepEqual(webview.runs.get('k')!.evals, fresh.runs.get('k')!.evals, 'evals arrive in deltas');
    assert.equal(webview.runs.get('k')!.evals.length, 8);
    const loss = webview.runs.get('k')!.series.get('train/loss')!;
    assert.deepEqual(
      loss.markers.pts.map((p) => [p.step, p.v]),
      [[77, 'NaN']],
    );
  });
}

test('a field a foreign writer logs only sometimes has gaps, not NaN markers; a logged NaN is a marker', () => {
  const data = runData('k');
  append(data, [
    { step: 0, t: 1, loss: 3 },
    { step: 1, t: 2, loss: 2.5, acc: 0.4 },
    { step: 2, t: 3, loss: 2 },
    { step: 3, t: 4, loss: 1.5, acc: 'NaN' },
    { step: 4, t: 5, loss: 1, acc: 0.6 },
  ]);
  const payload = computeChartPayload(data, DEFAULT_VIEW);
  const acc = payload.series.find((s) => s.field === 'acc');
  assert.ok(acc);
  assert.deepEqual(acc.raw.x, [1, 4]);
  assert.deepEqual(acc.markers.step, [3]);
  assert.deepEqual(acc.markers.v, ['NaN']);
});

test('a gap in numbering is refused; a resume that rewrites history yields a snapshot', () => {
  const store = new FakeStore();
  const data = runData('k');
  store.runs.set('k', data);
  append(
    data,
    Array.from({ length: 100 }, (_, i) => train(i)),
  );
  const model = new DashboardModel(store, ['k'], DEFAULT_VIEW);
  const webview = new DashboardData();
  webview.snapshot(model.snapshot());
  model.accept({ key: 'k', summaryChanged: false, tablesFrom: append(data, [train(100)]) });
  const d1 = model.next();
  model.accept({ key: 'k', summaryChanged: false, tablesFrom: append(data, [train(101)]) });
  const d2 = model.next();
  assert.equal(d1?.type, 'delta');
  assert.equal(webview.delta(d2 as never), null, 'seq gap');
  model.accept({ key: 'k', summaryChanged: false, tablesFrom: append(data, [train(50)]) }); // resumed from step 50
  assert.equal(model.next()?.type, 'snapshot');
  assert.equal(model.accept({ key: 'other', summaryChanged: true, tablesFrom: new Map() }), false);
});

test('computeChartPayload: zoomed range, grad clip, malformed count, events on the tokens axis', () => {
  const data = runData('k');
  data.summary.config = { grad_clip: 0.5 } as never;
  append(
    data,
    Array.from({ length: 10_000 }, (_, i) => train(i)),
  );
  data.events.push({ step: 5000, t: 0, kind: 'spike', level: 'warning', message: 'spike' });
  const p = computeChartPayload(data, { ...DEFAULT_VIEW, xAxis: 'tokens', range: [512 * 1000, 512 * 2000] });
  assert.equal(p.header.gradClip, 0.5);
  assert.equal(p.header.malformed.metrics, 2);
  assert.deepEqual(
    p.events.map((e) => e.x),
    [5000 * 512],
  );
  const loss = p.series.find((s) => s.field === 'loss')!;
  assert.equal(loss.total, 1003);
  assert.equal(loss.raw.x[0], 999 * 512);
  assert.equal(loss.raw.x.at(-1), 2001 * 512);
});
