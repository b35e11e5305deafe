// RemoteFollower against a scripted channel: protocol lines (split anywhere, even inside a UTF-8
// character) reach the RunStore as the local tailers would deliver them; offsets are kept, a drop
// reconnects with backoff and resumes with --from; reset and malformed lines are honoured; a
// refused login is not retried until asked.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { FollowOffsets } from '../../src/shared/follow-protocol';
import { RUN_FORMAT, type RunInfo } from '../../src/shared/run';
import { PRESETS } from '../../src/shared/config';
import { RunStore } from '../../src/host/runs/store';
import type { RunTarget } from '../../src/host/runs/types';
import { SshError, type RemoteProcess, type SshConnection } from '../../src/host/ssh/connection';
import { RemoteFollower, toCheckpointSummaries, type FollowHost } from '../../src/host/ssh/remoteFollower';
import { evalAverage, until } from '../helpers';

interface FakeChannel {
  out: PassThrough;
  exit(code: number | null): void;
  closed: boolean;
}

/** A host whose every exec is a channel the test writes to. */
class FakeHost implements FollowHost {
  froms: FollowOffsets[] = [];
  channels: FakeChannel[] = [];
  failWith: Error | undefined;
  private waiting: ((c: FakeChannel) => void)[] = [];

  async connection(): Promise<SshConnection> {
    if (this.failWith) throw this.failWith;
    const exec = async (): Promise<RemoteProcess> => {
      const out = new PassThrough();
      let done: (r: { code: number | null }) => void = () => {};
      const exit = new Promise<{ code: number | null }>((r) => (done = r));
      const channel: FakeChannel = { out, closed: false, exit: (code) => ((channel.closed = true), done({ code })) };
      this.channels.push(channel);
      this.waiting.shift()?.(channel);
      return {
        stdout: out,
        stderr: new PassThrough(),
        stdin: new PassThrough(),
        exit,
        close: () => channel.exit(null),
      };
    };
    return { exec } as unknown as SshConnection;
  }

  async followCommand(_dir: string, from: FollowOffsets): Promise<string> {
    this.froms.push({ ...from });
    return 'follow';
  }

  nextChannel(): Promise<FakeChannel> {
    return new Promise((r) => this.waiting.push(r));
  }
}

const target: RunTarget = {
  id: 'ssh:fake',
  label: 'fake',
  listRunDirs: async () => [],
  start: async () => '',
  stop: async () => {},
  resume: async () => {},
  planDelete: async (dir) => ({ action: 'forget', dir, why: 'fake' }),
  delete: async () => {},
  isAlive: async () => true,
  findTorch: async () => ({ reason: 'fake' }),
  runCli: () => Promise.reject(new Error('fake')),
};

const info = (status: RunInfo['status']): RunInfo => ({
  format: RUN_FORMAT,
  id: 'r1',
  name: '遠',
  createdAt: '',
  host: 'h',
  pid: 42,
  status,
  step: 0,
  config: {} as RunInfo['config'],
  backend: { name: 'wasm', skipped: [] },
  data: { input: 'default', files: [] },
  resumes: [],
  exit: null,
});

const ready = (from = { 'metrics.jsonl': 0, 'samples.jsonl': 0, 'events.jsonl': 0 }) =>
  JSON.stringify({ ready: true, protocol: 'steelscope.follow/1', dir: '/r', from }) + '\n';
const rec = (file: string, offset: number, record: object) => JSON.stringify({ file, offset, record }) + '\n';
const tick = () => new Promise((r) => setImmediate(r));

/**
 * A run followed over a fake host into a store disposed after the test: `ch` is the follower's
 * first channel, `states` every connection state it went through.
 */
async function followedRun(t: TestContext) {
  const host = new FakeHost();
  const store = new RunStore({ flushMs: 1, aliveCheckMs: 0 });
  t.after(() => store.dispose());
  const follower = new RemoteFollower(host, '/r', { initialBackoffMs: 5 });
  const states: string[] = [];
  follower.onState((s) => states.push(s));
  const first = host.nextChannel();
  const key = store.addRemoteRun(target, '/r', follower);
  return { host, store, follower, key, states, ch: await first };
}

test('records split anywhere reach the store in order; a drop resumes from the offsets', async (t: TestContext) => {
  const { host, store, follower, key, states, ch } = await followedRun(t);
  const text =
    ready() +
    JSON.stringify({ run: info('running') }) +
    '\n' +
    rec('metrics.jsonl', 40, { step: 0, t: 1, kind: 'train', loss: 5 }) +
    rec('samples.jsonl', 70, {
      step: 0,
      t: 1,
      prompt: '春',
      text: '眠不覺曉',
      temperature: 1,
      top_k: 0,
      top_p: 1,
      seed: 1,
    }) +
    rec('metrics.jsonl', 80, { step: 1, t: 2, kind: 'train', loss: 4 }) +
    rec('evals.jsonl', 90, { step: 1, t: 2, task: 'poetry-mc', subject: '_average', n: 400, acc: 0.3, stderr: 0.02 });
  const bytes = Buffer.from(text);
  const cut = bytes.indexOf(Buffer.from('眠')) + 1; // inside a UTF-8 character
  ch.out.write(bytes.subarray(0, cut));
  await tick();
  ch.out.write(bytes.subarray(cut));
  await until('two train rows', () => store.get(key)?.tables.get('train')?.length === 2);
  assert.equal(store.get(key)?.samples[0].text, '眠不覺曉');
  await until('the eval record', () => store.get(key)?.evals.length === 1);
  assert.equal(store.get(key)?.evals[0].acc, 0.3);
  assert.equal(store.get(key)?.summary.name, '遠');
  assert.equal(follower.state, 'connected');
  assert.deepEqual(follower.offsets, {
    'metrics.jsonl': 80,
    'samples.jsonl': 70,
    'events.jsonl': 0,
    'system.jsonl': 0,
    'evals.jsonl': 90,
  });

  const second = host.nextChannel();
  ch.exit(null); // the connection dropped
  const ch2 = await second;
  assert.deepEqual(
    host.froms.at(-1),
    { 'metrics.jsonl': 80, 'samples.jsonl': 70, 'events.jsonl': 0, 'system.jsonl': 0, 'evals.jsonl': 90 },
    'resumes after what it has',
  );
  ch2.out.write(ready(follower.offsets) + rec('metrics.jsonl', 120, { step: 2, t: 3, kind: 'train', loss: 3 }));
  await until('the third row', () => store.get(key)?.tables.get('train')?.length === 3);
  const train = store.get(key)!.tables.get('train')!;
  assert.deepEqual([...train.step.subarray(0, train.length)], [0, 1, 2]);
  assert.deepEqual(states.slice(0, 4), ['connecting', 'connected', 'disconnected', 'connecting']);
  assert.equal(follower.attempts, 2);
  store.dispose();
  assert.equal(follower.state, 'disconnected');
});

test('reset clears what came from a file; malformed lines are counted and advance the offset', async (t: TestContext) => {
  const { store, follower, key, ch } = await followedRun(t);
  ch.out.write(
    ready() +
      rec('metrics.jsonl', 40, { step: 0, t: 1, loss: 5 }) +
      JSON.stringify({ file: 'metrics.jsonl', offset: 50, malformed: true }) +
      '\n',
  );
  await until('the malformed count', () => store.get(key)?.summary.malformed.metrics === 1);
  assert.equal(follower.offsets['metrics.jsonl'], 50);
  ch.out.write(
    JSON.stringify({ reset: 'metrics.jsonl' }) + '\n' + rec('metrics.jsonl', 30, { step: 7, t: 1, loss: 1 }),
  );
  await until('the reset', () => store.get(key)?.tables.get('train')?.step[0] === 7);
  assert.equal(store.get(key)?.tables.get('train')?.length, 1);
  assert.equal(store.get(key)?.summary.malformed.metrics, 0);
  assert.equal(follower.offsets['metrics.jsonl'], 30);
  ch.out.write(
    JSON.stringify({ checkpoints: [{ step: 10, dir: '/r/checkpoints/step-00000010', complete: true, eval_loss: 2 }] }) +
      '\nnot json\n',
  );
  await until('the checkpoint', () => store.get(key)?.summary.checkpoints.length === 1);
  assert.equal(store.get(key)?.summary.checkpoints[0].best, true);
  store.dispose();
});

test('a refused login is not retried until reconnect(); then it follows', async (t: TestContext) => {
  const host = new FakeHost();
  host.failWith = new SshError('Authentication failed for u@h: wrong password or key.', 'auth');
  const follower = new RemoteFollower(host, '/r', { initialBackoffMs: 5 });
  t.after(() => follower.dispose());
  follower.start({ batch: () => {}, malformed: () => {}, runInfo: () => {}, checkpoints: () => {} });
  await until('the failure', () => follower.lastError !== undefined && follower.state === 'disconnected');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(host.froms.length, 0, 'no retry meanwhile');
  host.failWith = undefined;
  const next = host.nextChannel();
  follower.reconnect();
  (await next).out.write(ready());
  await until('connected', () => follower.state === 'connected');
  follower.dispose();
});

test('silence longer than silenceMs closes the channel and reconnects', async (t: TestContext) => {
  const host = new FakeHost();
  const follower = new RemoteFollower(host, '/r', { initialBackoffMs: 5, silenceMs: 30 });
  t.after(() => follower.dispose());
  const first = host.nextChannel();
  follower.start({ batch: () => {}, malformed: () => {}, runInfo: () => {}, checkpoints: () => {} });
  const ch = await first;
  ch.out.write(ready());
  const second = host.nextChannel();
  await second;
  assert.ok(ch.closed, 'the silent channel was closed');
  follower.dispose();
});

test('checkpoint entries become summaries with the best marked', () => {
  const list = toCheckpointSummaries([
    { step: 10, dir: 'a', complete: true, eval_loss: 3 },
    { step: 20, dir: 'b', complete: true, eval_loss: 2 },
    { step: 30, dir: 'c', complete: false, eval_loss: null },
  ]);
  assert.deepEqual(
    list.map((c) => [c.step, c.best, c.evalLoss]),
    [
      [10, false, 3],
      [20, true, 2],
      [30, false, null],
    ],
  );
});

test('a followed run whose config has best_by poetry-mc/acc: ★ best follows the eval records as they arrive', async (t: TestContext) => {
  const { store, key, ch } = await followedRun(t);
  const config = { ...PRESETS.tiny, best_by: 'poetry-mc/acc', eval_tasks: [{ task: 'poetry-mc' }] };
  const entry = (step: number, loss: number) => ({
    step,
    dir: `/r/checkpoints/step-${String(step).padStart(8, '0')}`,
    complete: true,
    eval_loss: loss,
  });
  const average = (step: number, acc: number) => evalAverage('poetry-mc', step, acc);
  const best = () => store.get(key)?.summary.checkpoints.find((c) => c.best)?.step;
  ch.out.write(
    ready() +
      JSON.stringify({ run: { ...info('running'), config } }) +
      '\n' +
      JSON.stringify({ checkpoints: [entry(10, 2.0), entry(20, 3.0)] }) +
      '\n',
  );
  await until('the checkpoints', () => store.get(key)?.summary.checkpoints.length === 2);
  assert.equal(best(), undefined, 'no score yet: no best, although step 10 has the lower eval loss');
  ch.out.write(rec('evals.jsonl', 100, average(10, 0.3)) + rec('evals.jsonl', 200, average(20, 0.4)));
  await until('step 20 best by accuracy', () => best() === 20);
  ch.out.write(rec('evals.jsonl', 300, average(10, 0.5))); // step 10 evaluated again
  await until('step 10 best after its re-evaluation', () => best() === 10);
});
