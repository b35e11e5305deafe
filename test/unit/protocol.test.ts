import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHostMessage, checkWebviewMessage, DEFAULT_VIEW, type HostMessage, type HostToWebview, type ViewState, type WebviewToHost } from '../../src/shared/protocol';
import { appendRecord, kindOf, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunChange, RunData, RunStoreApi, SeriesTable } from '../../src/host/runs/types';
import type { EventRecord, MetricRecord, SampleRecord } from '../../src/shared/run';
import { computeChartPayload, DashboardModel } from '../../src/host/panels/dashboardModel';
import { DashboardData } from '../../webview/dashboard/data';

const chunk = {
  kind: 'train', field: 'loss', total: 3, stride: 1, from: 0,
  raw: { x: [1, 2], y: [3.5, 2.5], n: [1, 1, 0] },
  smooth: null,
  markers: { x: [3], step: [3], v: ['NaN'], n: [0, 0, 1] },
};
const header = { key: 'local::/r', name: 'r', status: 'running', color: 0, gradClip: 1, lastStep: 3, malformed: { metrics: 1, samples: 0, events: 0 }, timed: true, engine: 'PyTorch · cpu · fp32 · 2 processes', checkpoints: [{ step: 2, evalLoss: 3.5, best: true, complete: true }] };
const sample = { step: 3, t: 1, prompt: '春', text: '<img src=x onerror=alert(1)>', settings: 'T 0.8' };
const event = { x: 2, step: 2, kind: 'spike', level: 'warning', message: 'loss spike' };

const goodHost: HostToWebview[] = [
  { type: 'snapshot', seq: 1, view: DEFAULT_VIEW, maxPoints: 2000, keys: [header.key], runs: [{ header, series: [chunk as never], events: [event], samples: [sample] }] },
  { type: 'snapshot', seq: 2, view: { ...DEFAULT_VIEW, range: [1, 2], xAxis: 'wall' }, maxPoints: 2000, keys: [], runs: [] },
  { type: 'delta', seq: 2, runs: [{ key: 'k', header: null, series: [], events: { from: 0, items: [{ ...event, x: null }] }, samples: null }] },
];
const goodWebview: WebviewToHost[] = [
  { type: 'ready', view: null },
  { type: 'ready', view: DEFAULT_VIEW },
  { type: 'requestSnapshot', reason: 'gap' },
  { type: 'setSmoothing', weight: 0 },
  { type: 'setSmoothing', weight: 0.999 },
  { type: 'setXAxis', axis: 'tokens' },
  { type: 'setScale', axis: 'y', log: true },
  { type: 'zoom', range: [10, 20.5] },
  { type: 'zoom', range: null },
];

test('validators accept every well-formed message', () => {
  for (const m of goodHost) assert.deepEqual(checkHostMessage(JSON.parse(JSON.stringify(m))), { ok: true, message: m });
  for (const m of goodWebview) assert.deepEqual(checkWebviewMessage(JSON.parse(JSON.stringify(m))), { ok: true, message: m });
});

test('validators reject malformed messages, naming the field', () => {
  const bad: [unknown, RegExp][] = [
    [null, /expected an object/],
    [{ type: 'nope' }, /unknown type/],
    [{ type: 'setSmoothing' }, /weight: missing/],
    [{ type: 'setSmoothing', weight: '0.5' }, /weight/],
    [{ type: 'setSmoothing', weight: 1.5 }, /weight/],
    [{ type: 'setXAxis', axis: 'epoch' }, /axis: expected one of/],
    [{ type: 'zoom', range: [1] }, /range: expected a pair/],
    [{ type: 'zoom', range: [1, 'x'] }, /range\[1\]/],
    [{ type: 'zoom', range: null, extra: 1 }, /extra: unknown field/],
    [{ type: 'ready' }, /view: missing/],
    [{ type: 'setScale', axis: 'z', log: true }, /axis/],
    [{ type: 'setScale', axis: 'x', log: 1 }, /log: expected a boolean/],
  ];
  for (const [m, re] of bad) {
    const r = checkWebviewMessage(m);
    assert.equal(r.ok, false, JSON.stringify(m));
    if (!r.ok) assert.match(r.error, re);
  }
  const snap = goodHost[0] as { runs: { series: unknown[] }[] };
  const badHost: [unknown, RegExp][] = [
    [{ ...goodHost[0], seq: 1.5 }, /seq: expected an integer/],
    [{ ...goodHost[0], keys: [3] }, /keys\[0\]: expected a string/],
    [{ ...goodHost[0], runs: [{ ...snap.runs[0], series: [{ ...chunk, raw: { x: [null], y: [1], n: [1] } }] }] }, /raw\.x\[0\]: expected a finite number/],
    [{ ...goodHost[0], runs: [{ ...snap.runs[0], series: [{ ...chunk, markers: { ...chunk.markers, v: ['nan'] } }] }] }, /markers\.v\[0\]/],
    [{ ...goodHost[0], runs: [{ ...snap.runs[0], samples: [{ ...sample, text: 5 }] }] }, /text: expected a string/],
    [{ ...goodHost[0], view: { ...DEFAULT_VIEW, xAxis: 'x' } }, /view\.xAxis/],
    [{ type: 'delta', seq: 1 }, /runs: missing/],
    [{ type: 'delta', seq: 1, runs: [{ key: 'k', header: null, series: [], events: { from: -0.5, items: [] }, samples: null }] }, /events\.from/],
    [{ type: 'snapshot' }, /missing/],
  ];
  for (const [m, re] of badHost) {
    const r = checkHostMessage(m);
    assert.equal(r.ok, false, JSON.stringify(m).slice(0, 200));
    if (!r.ok) assert.match(r.error, re);
  }
});

// ---- the snapshot/delta contract, host model -> webview data ----------------------------------

class FakeStore implements RunStoreApi {
  readonly runs = new Map<string, RunData>();
  onDidChange() { return { dispose() {} }; }
  get(key: string) { return this.runs.get(key); }
}

function runData(key: string): RunData & { tables: Map<string, SeriesTable>; samples: SampleRecord[]; events: EventRecord[] } {
  return {
    summary: { key, hostId: 'local', hostLabel: 'this machine', dir: '/r', name: 'r', status: 'running', checkpoints: [], malformed: { metrics: 2, samples: 0, events: 0 } },
    tables: new Map(), samples: [], events: [],
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

const train = (step: number): MetricRecord => ({ step, t: 1e12 + step * 1000, kind: 'train', loss: step === 77 ? 'NaN' : 5 / (1 + step / 100) + Math.sin(step), lr: 1e-3, grad_norm: 1 + Math.cos(step), tokens: step * 512 });

function heldPoints(d: DashboardData) {
  return [...d.runs.values()].map((r) => [...r.series.entries()].map(([id, s]) => [id, s.raw.pts, s.smooth?.pts ?? null, s.markers.pts]));
}

for (const view of [DEFAULT_VIEW, { ...DEFAULT_VIEW, xAxis: 'tokens', smoothing: 0 } as ViewState, { ...DEFAULT_VIEW, xAxis: 'relative' } as ViewState]) {
  test(`deltas applied in order give what a fresh snapshot gives (${view.xAxis}, smoothing ${view.smoothing})`, () => {
    const store = new FakeStore();
    const data = runData('k');
    store.runs.set('k', data);
    append(data, Array.from({ length: 500 }, (_, i) => train(i)));
    const model = new DashboardModel(store, ['k'], view, 400);
    const webview = new DashboardData();
    webview.snapshot(JSON.parse(JSON.stringify(model.snapshot())));
    let step = 500;
    const kinds: string[] = [];
    for (let round = 0; round < 30; round++) {
      const records = Array.from({ length: 37 + round * 13 }, () => train(step++));
      if (round % 5 === 0) records.push({ step: step - 3, t: 1e12 + step * 1000, kind: 'eval', loss: 2 });
      const change: RunChange = { key: 'k', summaryChanged: round % 7 === 0, tablesFrom: append(data, records) };
      if (round === 10) { data.samples.push({ step, t: 0, prompt: 'p', text: 't', temperature: 1, top_k: 0, top_p: 1, seed: 1 }); change.samplesFrom = 0; }
      assert.equal(model.accept(change), true);
      const m = JSON.parse(JSON.stringify(model.next())) as HostMessage<'snapshot' | 'delta'>;
      const checked = checkHostMessage(m);
      assert.ok(checked.ok, checked.ok ? '' : checked.error);
      kinds.push(m.type);
      if (m.type === 'snapshot') webview.snapshot(m);
      else assert.notEqual(webview.delta(m), null, `delta ${m.seq} applies`);
    }
    assert.ok(data.tables.get('train')!.length > 4000, 'grew past several stride changes');
    assert.ok(kinds.every((k) => k === 'delta'), 'appends travel as deltas');
    const fresh = new DashboardData();
    fresh.snapshot(JSON.parse(JSON.stringify(new DashboardModel(store, ['k'], view, 400).snapshot())));
    assert.deepEqual(heldPoints(webview), heldPoints(fresh));
    assert.equal(webview.runs.get('k')!.samples.length, 1);
    const loss = webview.runs.get('k')!.series.get('train/loss')!;
    assert.deepEqual(loss.markers.pts.map((p) => [p.step, p.v]), [[77, 'NaN']]);
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
  append(data, Array.from({ length: 100 }, (_, i) => train(i)));
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
  append(data, Array.from({ length: 10_000 }, (_, i) => train(i)));
  data.events.push({ step: 5000, t: 0, kind: 'spike', level: 'warning', message: 'spike' });
  const p = computeChartPayload(data, { ...DEFAULT_VIEW, xAxis: 'tokens', range: [512 * 1000, 512 * 2000] });
  assert.equal(p.header.gradClip, 0.5);
  assert.equal(p.header.malformed.metrics, 2);
  assert.deepEqual(p.events.map((e) => e.x), [5000 * 512]);
  const loss = p.series.find((s) => s.field === 'loss')!;
  assert.equal(loss.total, 1003);
  assert.equal(loss.raw.x[0], 999 * 512);
  assert.equal(loss.raw.x.at(-1), 2001 * 512);
});
