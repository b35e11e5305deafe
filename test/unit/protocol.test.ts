import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkHostMessage,
  checkWebviewMessage,
  DEFAULT_VIEW,
  type HostToWebview,
  type WebviewToHost,
} from '../../src/shared/protocol';

const chunk = {
  kind: 'train',
  field: 'loss',
  total: 3,
  stride: 1,
  from: 0,
  raw: { x: [1, 2], y: [3.5, 2.5], n: [1, 1, 0] },
  smooth: null,
  markers: { x: [3], step: [3], v: ['NaN'], n: [0, 0, 1] },
};
const header = {
  key: 'local::/r',
  name: 'r',
  status: 'running',
  color: 0,
  gradClip: 1,
  lastStep: 3,
  malformed: { metrics: 1, samples: 0, events: 0 },
  timed: true,
  engine: 'PyTorch · cpu · fp32 · 2 processes',
  checkpoints: [{ step: 2, evalLoss: 3.5, best: true, complete: true }],
};
const sample = { step: 3, t: 1, prompt: '春', text: '<img src=x onerror=alert(1)>', settings: 'T 0.8' };
const event = { x: 2, step: 2, kind: 'spike', level: 'warning', message: 'loss spike' };

const goodHost: HostToWebview[] = [
  {
    type: 'snapshot',
    seq: 1,
    view: DEFAULT_VIEW,
    maxPoints: 2000,
    keys: [header.key],
    runs: [{ header, series: [chunk as never], events: [event], samples: [sample], evals: [] }],
  },
  {
    type: 'snapshot',
    seq: 2,
    view: { ...DEFAULT_VIEW, range: [1, 2], xAxis: 'wall' },
    maxPoints: 2000,
    keys: [],
    runs: [],
  },
  {
    type: 'delta',
    seq: 2,
    runs: [
      {
        key: 'k',
        header: null,
        series: [],
        events: { from: 0, items: [{ ...event, x: null }] },
        samples: null,
        evals: null,
      },
    ],
  },
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
  for (const m of goodWebview)
    assert.deepEqual(checkWebviewMessage(JSON.parse(JSON.stringify(m))), { ok: true, message: m });
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
    [
      { ...goodHost[0], runs: [{ ...snap.runs[0], series: [{ ...chunk, raw: { x: [null], y: [1], n: [1] } }] }] },
      /raw\.x\[0\]: expected a finite number/,
    ],
    [
      {
        ...goodHost[0],
        runs: [{ ...snap.runs[0], series: [{ ...chunk, markers: { ...chunk.markers, v: ['nan'] } }] }],
      },
      /markers\.v\[0\]/,
    ],
    [{ ...goodHost[0], runs: [{ ...snap.runs[0], samples: [{ ...sample, text: 5 }] }] }, /text: expected a string/],
    [{ ...goodHost[0], view: { ...DEFAULT_VIEW, xAxis: 'x' } }, /view\.xAxis/],
    [{ type: 'delta', seq: 1 }, /runs: missing/],
    [
      {
        type: 'delta',
        seq: 1,
        runs: [{ key: 'k', header: null, series: [], events: { from: -0.5, items: [] }, samples: null }],
      },
      /events\.from/,
    ],
    [{ type: 'snapshot' }, /missing/],
  ];
  for (const [m, re] of badHost) {
    const r = checkHostMessage(m);
    assert.equal(r.ok, false, JSON.stringify(m).slice(0, 200));
    if (!r.ok) assert.match(r.error, re);
  }
});
