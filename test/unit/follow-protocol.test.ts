// The follow protocol's validators and the client's offset bookkeeping, without a process.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  applyFollowMessage,
  asFollowMessage,
  emptyOffsets,
  encodeFollowOffsets,
  encodeRecordMessage,
  FOLLOW_PROTOCOL,
  parseFollowMessage,
  parseFollowOffsets,
  type FollowMessage,
} from '../../src/shared/follow-protocol';
import { RUN_FORMAT } from '../../src/shared/run';

const run = { format: RUN_FORMAT, id: 'r1', name: 'r', status: 'running', pid: 42 };

describe('parseFollowOffsets', () => {
  test('known files with non-negative integers; missing files start at 0', () => {
    assert.deepEqual(parseFollowOffsets('{"metrics.jsonl":1234,"events.jsonl":5}'), {
      ok: true,
      offsets: { 'metrics.jsonl': 1234, 'samples.jsonl': 0, 'events.jsonl': 5, 'system.jsonl': 0, 'evals.jsonl': 0 },
    });
    assert.deepEqual(parseFollowOffsets('{}'), { ok: true, offsets: emptyOffsets() });
  });

  test('round-trips what encodeFollowOffsets writes', () => {
    const offsets = { 'metrics.jsonl': 1, 'samples.jsonl': 2, 'events.jsonl': 3, 'system.jsonl': 4, 'evals.jsonl': 5 };
    assert.deepEqual(parseFollowOffsets(encodeFollowOffsets(offsets)), { ok: true, offsets });
  });

  for (const [text, expected] of [
    ['{"metrics.jsonl":', /not valid JSON/],
    ['[1,2]', /must be a JSON object/],
    ['null', /must be a JSON object/],
    ['{"run.json":0}', /unknown file "run\.json"/],
    ['{"metrics.jsonl":-1}', /non-negative integer, got -1/],
    ['{"metrics.jsonl":1.5}', /non-negative integer/],
    ['{"metrics.jsonl":"12"}', /non-negative integer, got "12"/],
    ['{"metrics.jsonl":1e300}', /non-negative integer/],
  ] as const) {
    test(`rejects ${text}`, () => {
      const r = parseFollowOffsets(text);
      assert.equal(r.ok, false);
      if (!r.ok) assert.match(r.message, expected);
    });
  }
});

describe('asFollowMessage', () => {
  const valid: FollowMessage[] = [
    { ready: true, protocol: FOLLOW_PROTOCOL, dir: '/runs/a', from: emptyOffsets() },
    { checkpoints: [] },
    {
      checkpoints: [
        { step: 10, dir: '/runs/a/checkpoints/step-00000010', complete: true, eval_loss: 2.5 },
        { step: 20, dir: '/x', complete: false, eval_loss: null },
      ],
    },
    { file: 'metrics.jsonl', offset: 40, record: { step: 1, t: 2, kind: 'train', loss: 'NaN' } },
    {
      file: 'samples.jsonl',
      offset: 9,
      record: { step: 1, t: 2, prompt: '春', text: '風', temperature: 1, top_k: 0, top_p: 1, seed: 1 },
    },
    { file: 'events.jsonl', offset: 9, record: { step: 0, t: 2, kind: 'start', level: 'info', message: 'go' } },
    { file: 'events.jsonl', offset: 7, malformed: true },
    { reset: 'samples.jsonl' },
    {
      heartbeat: true,
      t: 1700000000000,
      offsets: { 'metrics.jsonl': 5, 'samples.jsonl': 0, 'events.jsonl': 9, 'system.jsonl': 0, 'evals.jsonl': 0 },
    },
    { error: { message: 'No run directory at /x.' } },
  ];
  for (const message of valid) {
    test(`accepts ${JSON.stringify(message).slice(0, 60)}`, () => {
      assert.deepEqual(asFollowMessage(JSON.parse(JSON.stringify(message))), message);
    });
  }

  const invalid: unknown[] = [
    null,
    [],
    'text',
    {},
    { ready: true, protocol: 'steelscope.follow/0', dir: '/a', from: emptyOffsets() },
    { ready: true, protocol: FOLLOW_PROTOCOL, dir: '/a', from: { 'metrics.jsonl': 0 } },
    { checkpoints: [{ step: 1, dir: '/a', complete: 'yes', eval_loss: null }] },
    { checkpoints: {} },
    { file: 'run.json', offset: 0, record: run },
    { file: 'metrics.jsonl', offset: -1, record: { step: 1, t: 2 } },
    { file: 'metrics.jsonl', offset: 3, record: { t: 2 } }, // no step: not a metric record
    { file: 'samples.jsonl', offset: 3, record: { step: 1, t: 2 } }, // no prompt/text
    { file: 'metrics.jsonl', offset: 3 },
    { reset: 'checkpoints' },
    { heartbeat: true, t: 5 },
    { heartbeat: true, t: 5, offsets: { 'metrics.jsonl': 5 } },
    { error: { code: 2 } },
  ];
  for (const value of invalid) {
    test(`rejects ${JSON.stringify(value)}`, () => assert.equal(asFollowMessage(value), undefined));
  }

  test('run.json travels as read; the client checks it, a bad field is a problem of that run, not a lost message', () => {
    const full = { ...run, createdAt: '2024-01-01T00:00:00Z', host: 'h', step: 3, engine: 'torch' };
    assert.deepEqual(asFollowMessage({ run: full }), { run: { ok: true, run: full, problems: [] } });
    const careless = asFollowMessage({ run: { ...full, name: 7, createdAt: null } });
    assert.ok(careless && 'run' in careless && careless.run.ok);
    assert.equal(careless.run.run.name, 'r1', 'a bad name is shown as the id');
    assert.equal(careless.run.run.createdAt, '');
    assert.deepEqual(
      careless.run.problems.map((p) => p.split(':').slice(0, 2).join(':')),
      ['run.json: name', 'run.json: createdAt'],
    );
    const notARun = asFollowMessage({ run: { id: 'r1' } });
    assert.ok(notARun && 'run' in notARun && !notARun.run.ok);
    assert.match(notARun.run.error, /format/);
  });

  test('parseFollowMessage: not JSON is no message', () => {
    assert.equal(parseFollowMessage('{"heartbeat":true,'), undefined);
    assert.deepEqual(parseFollowMessage('{"reset":"metrics.jsonl"}'), { reset: 'metrics.jsonl' });
  });
});

describe('encodeRecordMessage', () => {
  test("keeps the writer's text of the record, numbers included", () => {
    const line = encodeRecordMessage('metrics.jsonl', 77, '{"step":1,"t":2,"big":12345678901234567890,"x":1.50}');
    assert.equal(
      line,
      '{"file":"metrics.jsonl","offset":77,"record":{"step":1,"t":2,"big":12345678901234567890,"x":1.50}}',
    );
    const message = parseFollowMessage(line);
    assert.ok(message && 'record' in message);
    assert.equal(message.offset, 77);
    assert.equal(message.record.step, 1);
  });
});

describe('applyFollowMessage', () => {
  test('records, malformed lines and heartbeats advance offsets; a reset restarts a file; others change nothing', () => {
    let offsets = emptyOffsets();
    const steps: [FollowMessage, number, number][] = [
      [{ file: 'metrics.jsonl', offset: 20, record: { step: 1, t: 1 } }, 20, 0],
      [{ file: 'samples.jsonl', offset: 30, malformed: true }, 20, 30],
      [{ checkpoints: [] }, 20, 30],
      [{ checkpoints: [] }, 20, 30],
      [{ reset: 'metrics.jsonl' }, 0, 30],
      [{ file: 'metrics.jsonl', offset: 12, record: { step: 2, t: 2 } }, 12, 30],
      [
        {
          heartbeat: true,
          t: 5,
          offsets: { 'metrics.jsonl': 14, 'samples.jsonl': 31, 'events.jsonl': 0, 'system.jsonl': 0, 'evals.jsonl': 0 },
        },
        14,
        31,
      ], // past blank lines
    ];
    for (const [message, metrics, samples] of steps) {
      const before = offsets;
      const snapshot = { ...offsets };
      offsets = applyFollowMessage(offsets, message);
      assert.deepEqual(offsets, {
        'metrics.jsonl': metrics,
        'samples.jsonl': samples,
        'events.jsonl': 0,
        'system.jsonl': 0,
        'evals.jsonl': 0,
      });
      assert.deepEqual(before, snapshot, 'the input is not mutated');
    }
  });
});

test('a formats message keeps its cut (one source file started over alone)', () => {
  const batch = { reset: false, metrics: [{ step: 3, t: 5, loss: 1 }], samples: [], malformed: 0 };
  const cut = { tables: { train: 3 }, samples: 4 };
  const message = parseFollowMessage(JSON.stringify({ formats: { ...batch, cut }, sources: {} }));
  assert.ok(message && 'formats' in message);
  assert.deepEqual(message.formats.cut, cut);
});
