// Fuzz: random, truncated and mutated bytes (test/fuzz.ts, fixed seed and count) fed to run.json's
// readers (observeRunInfo for the views and follow, parseRunInfo for resume) and to the decoders of
// the serve and follow protocols, one line each, as they arrive from a pipe or an SSH channel.
// No throw escapes; what is accepted has the types its schema promises; a refusal is one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PRESETS } from '../../src/shared/config';
import {
  applyFollowMessage,
  emptyOffsets,
  FOLLOW_PROTOCOL,
  FOLLOWED_FILES,
  parseFollowMessage,
  parseFollowOffsets,
} from '../../src/shared/follow-protocol';
import { observeRunInfo, parseRunInfo, RUN_FORMAT, RUN_STATUSES } from '../../src/shared/run';
import { parseServeMessage, parseServeRequest, SERVE_PROTOCOL } from '../../src/shared/serve-protocol';
import { Rng } from '../../src/core/rng';
import { fuzzCases } from '../fuzz';

const SEED = 1202;
const CASES = 1500;

const RUN_JSON = {
  format: RUN_FORMAT,
  id: 'c0ffee',
  name: '唐詩 tiny',
  createdAt: '2026-12-02T07:00:00.000Z',
  host: 'gpu-1',
  pid: 4242,
  status: 'running',
  step: 120,
  config: PRESETS.tiny,
  backend: {
    name: 'wasm',
    skipped: [{ name: 'tensorflow', reason: 'not installed' }],
    kernels: 'steel simd, 2 threads',
  },
  data: { input: 'default', files: [{ path: '/d/poems.txt', sha256: 'ab'.repeat(32), bytes: 6_000_000 }] },
  resumes: [{ at: '2026-12-02T07:10:00.000Z', step: 100, pid: 4242, checkpoint: '/r/checkpoints/step-00000100' }],
  exit: null,
  engine: 'torch',
  device: 'cuda',
  precision: 'bf16',
  world_size: 2,
  torch_version: '2.4.0',
  gpus: ['H200', 'H200'],
};

const lines = (...values: object[]) => values.map((v) => Buffer.from(JSON.stringify(v)));

/** The line's JSON value, or undefined for text that is not JSON (what every reader does first). */
function json(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}

function oneLine(text: string, what: string): void {
  assert.equal(typeof text, 'string', what);
  assert.ok(text.length > 0, `${what}: an empty reason`);
}

test('run.json: fuzzed files are a run with typed fields and listed problems, or one line saying why not', () => {
  const valid = [
    Buffer.from(JSON.stringify(RUN_JSON, null, 2)),
    Buffer.from(JSON.stringify({ ...RUN_JSON, exit: { code: 0, reason: 'finished', at: 'x' } })),
  ];
  let runs = 0;
  for (const { name, bytes } of fuzzCases(valid, CASES, SEED)) {
    const value = json(bytes);
    const observed = observeRunInfo(value);
    const strict = parseRunInfo(value);
    if (!observed.ok) {
      oneLine(observed.error, name);
      assert.ok(!strict.ok, `${name}: resume accepts what the views refuse`);
      continue;
    }
    runs++;
    const run = observed.run;
    assert.ok(RUN_STATUSES.includes(run.status), name);
    assert.ok(Number.isSafeInteger(run.pid) && run.pid > 0, name);
    for (const field of [run.id, run.name, run.createdAt, run.host]) assert.equal(typeof field, 'string', name);
    assert.ok(Number.isSafeInteger(run.step) && run.step >= 0, name);
    for (const problem of observed.problems) assert.match(problem, /^run\.json: \w+/, name);
    if (strict.ok) assert.deepEqual(observed.problems, [], `${name}: resume accepts what the views report`);
  }
  assert.ok(runs > CASES / 20, `only ${runs} of ${CASES} cases were runs: the fuzzing hardly reached the fields`);
});

test('run.json: any one field replaced by any JSON value is reported on that field, or the file is not a run', () => {
  const rng = new Rng(SEED);
  const odd: unknown[] = [null, 0, -1, 1.5, 2 ** 53, 1e308, '', 'x', '🙂', true, [], [1, 'a'], {}, { name: 'x' }];
  const keys = Object.keys(RUN_JSON);
  const identity = new Set(['format', 'id', 'status', 'pid']);
  for (let i = 0; i < CASES; i++) {
    const key = keys[rng.int(keys.length)];
    const value = odd[rng.int(odd.length)];
    const observed = observeRunInfo({ ...RUN_JSON, [key]: value });
    const what = `${key} = ${JSON.stringify(value)}`;
    if (!observed.ok) {
      assert.ok(identity.has(key), `${what}: a display or detail field made the run unreadable (${observed.error})`);
      assert.match(observed.error, new RegExp(`^run\\.json\\.${key}: `), what);
      continue;
    }
    for (const problem of observed.problems) assert.match(problem, new RegExp(`^run\\.json: ${key}\\b`), what);
  }
});

test('serve protocol: fuzzed requests are parsed or refused with a reason; fuzzed messages are typed or dropped', () => {
  const requests = lines(
    {
      id: 1,
      method: 'generate',
      params: { prompt: '春眠', max_tokens: 8, temperature: 0.7, top_k: 40, top_p: 0.9, seed: 3, stop: ['。'] },
    },
    {
      id: 'b',
      method: 'generate',
      params: { messages: [{ role: 'user', content: '床前明月光' }], repetition_penalty: 1.1 },
    },
    { id: 2, method: 'cancel', params: { target: 1 } },
  );
  for (const { name, bytes } of fuzzCases(requests, CASES, SEED)) {
    const parsed = parseServeRequest(bytes.toString('utf8'));
    if (!parsed.ok) {
      oneLine(parsed.message, name);
      continue;
    }
    const { request } = parsed;
    if (request.method === 'cancel') continue;
    assert.ok((request.params.prompt === undefined) !== (request.params.messages === undefined), name);
  }
  const messages = lines(
    {
      ready: true,
      protocol: SERVE_PROTOCOL,
      checkpoint: '/r/checkpoints/step-00000010',
      step: 10,
      config: PRESETS.tiny,
      backend: 'wasm',
    },
    { id: 1, token: '春' },
    { id: 1, done: true, text: '春眠不覺曉', reason: 'length', prompt_tokens: 3, completion_tokens: 8, seed: 3 },
    { id: 2, result: { target: 1, cancelled: true } },
    { id: null, error: { message: 'Not valid JSON' } },
  );
  for (const { name, bytes } of fuzzCases(messages, CASES, SEED + 1)) {
    const message = parseServeMessage(bytes.toString('utf8'));
    if (message && 'token' in message) assert.equal(typeof message.token, 'string', name);
    if (message && 'done' in message) assert.ok(Number.isSafeInteger(message.completion_tokens), name);
  }
});

test('follow protocol: fuzzed lines are typed messages or dropped; offsets stay non-negative integers', () => {
  const offsets = { 'metrics.jsonl': 120, 'samples.jsonl': 0, 'events.jsonl': 64 };
  const valid = [
    Buffer.from(JSON.stringify({ ready: true, protocol: FOLLOW_PROTOCOL, dir: '/r', from: offsets })),
    Buffer.from(JSON.stringify({ run: RUN_JSON })),
    ...lines(
      { checkpoints: [{ step: 10, dir: '/r/checkpoints/step-00000010', complete: true, eval_loss: 2.5 }] },
      { file: 'metrics.jsonl', offset: 120, record: { step: 3, t: 1, kind: 'train', loss: 'NaN' } },
      { file: 'samples.jsonl', offset: 9, malformed: true },
      { reset: 'events.jsonl' },
      { heartbeat: true, t: 1700000000000, offsets },
      { error: { message: 'No run directory at /r.' } },
    ),
  ];
  let state = emptyOffsets();
  for (const { name, bytes } of fuzzCases(valid, CASES, SEED + 2)) {
    const message = parseFollowMessage(bytes.toString('utf8'));
    if (message === undefined) continue;
    if ('run' in message && !message.run.ok) oneLine(message.run.error, name);
    state = applyFollowMessage(state, message);
    for (const offset of FOLLOWED_FILES.map((f) => state[f]))
      assert.ok(Number.isSafeInteger(offset) && offset >= 0, name);
  }
  for (const { name, bytes } of fuzzCases([Buffer.from(JSON.stringify(offsets))], CASES / 3, SEED + 3)) {
    const from = parseFollowOffsets(bytes.toString('utf8'));
    if (!from.ok) oneLine(from.message, name);
    else
      for (const offset of FOLLOWED_FILES.map((f) => from.offsets[f]))
        assert.ok(Number.isSafeInteger(offset) && offset >= 0, name);
  }
});
