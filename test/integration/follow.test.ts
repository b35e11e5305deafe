// `steelscope follow` as the extension meets it over SSH: a real `node dist/cli.js follow` process
// on a run folder that the test (or a real trainer) appends to, every stdout line checked against
// the protocol, offsets kept the way the client keeps them.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, test } from 'node:test';
import {
  applyFollowMessage,
  asFollowMessage,
  emptyOffsets,
  encodeFollowOffsets,
  RECORD_VALIDATORS,
  type CheckpointsMessage,
  type FollowedFile,
  type FollowMessage,
  type FollowOffsets,
  type RunMessage,
} from '../../src/shared/follow-protocol';
import { MAX_RECORD_BYTES } from '../../src/shared/framing';
import { parseJsonl } from '../../src/shared/jsonl';
import { isMetricRecord, RUN_FORMAT } from '../../src/shared/run';
import {
  CLI,
  poetrySubset,
  runCli,
  scratch,
  sleep,
  SMALL_SETS,
  spawnCli,
  TEST_ENV,
  writeTestCheckpoint,
} from '../helpers';

type FileMessage = Extract<FollowMessage, { file: FollowedFile }>;

/** Followers still running; a failed test kills its own so the run does not hang on them. */
const live = new Set<FollowClient>();

/** One follower process; every stdout line must be a protocol message. */
class FollowClient {
  readonly messages: FollowMessage[] = [];
  readonly bad: string[] = [];
  offsets: FollowOffsets = emptyOffsets();
  readonly exited: Promise<number | null>;
  readonly child: ChildProcessWithoutNullStreams;
  private waiters: (() => void)[] = [];

  /** `keep: false` counts messages through `onMessage` without storing them (a large catch-up). */
  constructor(
    dir: string,
    args: string[] = [],
    private readonly opts: { keep?: boolean; onMessage?: (m: FollowMessage) => void } = {},
  ) {
    this.child = spawn(process.execPath, [CLI, 'follow', dir, '--poll-ms', '50', '--heartbeat-ms', '200', ...args], {
      env: TEST_ENV,
    });
    const reap = () => this.child.kill('SIGKILL');
    process.once('exit', reap);
    live.add(this);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code) => (process.removeListener('exit', reap), live.delete(this), resolve(code))),
    );
    this.child.stderr.resume();
    createInterface({ input: this.child.stdout, crlfDelay: Infinity }).on('line', (line) => this.onLine(line));
  }

  private onLine(line: string): void {
    let checked: FollowMessage | undefined;
    try {
      checked = asFollowMessage(JSON.parse(line));
    } catch {
      checked = undefined;
    }
    if (!checked) {
      this.bad.push(line);
      return;
    }
    this.offsets = applyFollowMessage(this.offsets, checked);
    if (this.opts.keep !== false) this.messages.push(checked);
    this.opts.onMessage?.(checked);
    const waiters = this.waiters;
    this.waiters = [];
    waiters.forEach((w) => w());
  }

  /** `timeoutMs` only turns a hang into a failure: every wait is on a condition, never on a clock. */
  async waitFor(done: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      assert.deepEqual(this.bad, [], 'every line is a protocol message');
      if (Date.now() > deadline)
        throw new Error(`timed out waiting for ${what}; last messages: ${JSON.stringify(this.messages.slice(-5))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  fileMessages(file: FollowedFile): FileMessage[] {
    return this.messages.filter((m): m is FileMessage => 'file' in m && m.file === file);
  }

  count(kind: 'heartbeat' | 'run' | 'checkpoints' | 'reset' | 'ready'): number {
    return this.messages.filter((m) => kind in m).length;
  }

  /** Ends like the SSH channel ends: stdin EOF. */
  async end(): Promise<number | null> {
    this.child.stdin.end();
    const code = await this.exited;
    assert.deepEqual(this.bad, []);
    return code;
  }
}

/** What a follower must send for `content` of `file`, read from offset `from`: one message per complete non-blank line. */
function expectedMessages(file: FollowedFile, content: Buffer, from = 0): FileMessage[] {
  const out: FileMessage[] = [];
  let start = 0;
  for (let nl = content.indexOf(0x0a); nl !== -1; nl = content.indexOf(0x0a, start)) {
    const line = content.toString('utf8', start, nl).trim();
    start = nl + 1;
    if (!line || start <= from) continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    out.push(
      RECORD_VALIDATORS[file](value)
        ? ({ file, offset: start, record: value } as FileMessage)
        : { file, offset: start, malformed: true },
    );
  }
  return out;
}

const json = (value: object) => JSON.stringify(value) + '\n';
const metric = (step: number) =>
  json({ step, t: 1_700_000_000_000 + step, kind: 'train', loss: 3 - step / 100, lr: 3e-4 });

function writeRunJson(dir: string, status: string): void {
  const info = {
    format: RUN_FORMAT,
    id: 'run-1',
    name: 'follow',
    createdAt: '2024-01-01T00:00:00Z',
    host: 'h',
    pid: 1,
    status,
    step: 0,
  };
  writeFileSync(join(dir, '.run.json.tmp'), JSON.stringify(info, null, 2));
  renameSync(join(dir, '.run.json.tmp'), join(dir, 'run.json')); // atomic, as the trainer does
}

function newRun(name: string): string {
  const dir = join(scratch(`follow-${name}`), 'run');
  mkdirSync(dir);
  return dir;
}

describe('steelscope follow', () => {
  afterEach(() => {
    for (const client of live) client.child.kill('SIGKILL');
  });

  test('appended records arrive once each, in order, with the byte offset just past each line', async () => {
    const dir = newRun('append');
    const metrics = join(dir, 'metrics.jsonl');
    const samples = join(dir, 'samples.jsonl');
    appendFileSync(metrics, metric(1) + metric(2));
    const client = new FollowClient(dir);
    await client.waitFor(() => client.offsets['metrics.jsonl'] > 0, 'the existing records');
    appendFileSync(metrics, '{"step":3,"t":3,"kind":"tr'); // a partial line: not yet a line
    appendFileSync(
      samples,
      json({ step: 3, t: 3, prompt: '春', text: '風吹柳絮', temperature: 0.8, top_k: 40, top_p: 0.95, seed: 7 }),
    );
    appendFileSync(join(dir, 'events.jsonl'), json({ step: 0, t: 1, kind: 'start', level: 'info', message: '開始' }));
    appendFileSync(
      join(dir, 'evals.jsonl'),
      json({ step: 2, t: 3, task: 'poetry-mc', subject: '_average', n: 400, acc: 0.3, stderr: 0.02 }) +
        json({ step: 2, task: 'poetry-mc' }),
    );
    await client.waitFor(() => client.offsets['events.jsonl'] > 0, 'the event');
    await client.waitFor(() => client.fileMessages('evals.jsonl').length === 2, 'the eval records');
    await sleep(300); // several polls: the partial line must still wait
    assert.equal(client.fileMessages('metrics.jsonl').length, 2, 'a line without its newline is not sent');
    appendFileSync(metrics, 'ain","loss":2.9}\n{this is not json}\n\n' + json({ t: 5 }) + metric(4) + '\r\n');
    const full = readFileSync(metrics);
    await client.waitFor(() => client.offsets['metrics.jsonl'] === full.length, 'the completed line and the rest');
    assert.equal(await client.end(), 0, 'stdin EOF ends it with code 0');
    for (const file of ['metrics.jsonl', 'samples.jsonl', 'events.jsonl', 'evals.jsonl'] as const) {
      const content = file === 'metrics.jsonl' ? full : readFileSync(join(dir, file));
      assert.deepEqual(client.fileMessages(file), expectedMessages(file, content), file);
    }
    assert.equal(
      client.fileMessages('metrics.jsonl').filter((m) => 'malformed' in m).length,
      2,
      'not JSON, and JSON without step',
    );
    assert.equal(client.messages[0] && 'ready' in client.messages[0], true, 'ready comes first');
    assert.deepEqual(
      client.fileMessages('evals.jsonl').map((m) => 'malformed' in m),
      [false, true],
      'an eval record without t, subject and n is malformed',
    );
  });

  test('a restart with --from the last offsets repeats nothing and loses nothing', async () => {
    const dir = newRun('restart');
    const metrics = join(dir, 'metrics.jsonl');
    appendFileSync(metrics, metric(1) + metric(2));
    const first = new FollowClient(dir);
    await first.waitFor(() => first.offsets['metrics.jsonl'] === readFileSync(metrics).length, 'the first records');
    appendFileSync(metrics, metric(3).slice(0, 10)); // the connection drops with a partial line pending
    await sleep(150);
    assert.equal(await first.end(), 0);
    appendFileSync(metrics, metric(3).slice(10) + metric(4)); // written while nobody follows
    appendFileSync(
      join(dir, 'events.jsonl'),
      json({ step: 4, t: 4, kind: 'checkpoint', level: 'info', message: 'saved' }),
    );
    const from = first.offsets;
    const second = new FollowClient(dir, ['--from', encodeFollowOffsets(from)]);
    await second.waitFor(
      () => second.offsets['metrics.jsonl'] === readFileSync(metrics).length && second.offsets['events.jsonl'] > 0,
      'the new records',
    );
    appendFileSync(metrics, metric(5));
    await second.waitFor(
      () => second.offsets['metrics.jsonl'] === readFileSync(metrics).length,
      'a record after the restart',
    );
    assert.equal(await second.end(), 0);
    const ready = second.messages[0];
    assert.ok('ready' in ready && ready.dir === dir);
    assert.deepEqual(ready.from, from);
    assert.equal(second.count('reset'), 0);
    const all = readFileSync(metrics);
    assert.deepEqual(
      [...first.fileMessages('metrics.jsonl'), ...second.fileMessages('metrics.jsonl')],
      expectedMessages('metrics.jsonl', all),
    );
    assert.deepEqual(
      second.fileMessages('metrics.jsonl').map((m) => ('record' in m ? m.record.step : -1)),
      [3, 4, 5],
    );
  });

  test('a truncated or replaced file is announced with a reset and read again from 0', async () => {
    const dir = newRun('reset');
    const metrics = join(dir, 'metrics.jsonl');
    appendFileSync(metrics, metric(1) + metric(2) + metric(3));
    const client = new FollowClient(dir);
    await client.waitFor(() => client.offsets['metrics.jsonl'] === readFileSync(metrics).length, 'the records');
    truncateSync(metrics, 0);
    appendFileSync(metrics, metric(9)); // shorter than what was read: always seen as a truncation
    await client.waitFor(
      () => client.count('reset') === 1 && client.offsets['metrics.jsonl'] === readFileSync(metrics).length,
      'the reset',
    );
    const afterTruncation = client.messages.length;
    const replacement = metric(20) + metric(21) + metric(22) + metric(23); // longer than before, a new inode
    writeFileSync(join(dir, 'metrics.tmp'), replacement);
    renameSync(join(dir, 'metrics.tmp'), metrics);
    await client.waitFor(
      () => client.count('reset') === 2 && client.offsets['metrics.jsonl'] === replacement.length,
      'the second reset',
    );
    assert.equal(await client.end(), 0);
    const afterFirstReset = client.messages.slice(client.messages.findIndex((m) => 'reset' in m) + 1, afterTruncation);
    assert.deepEqual(afterFirstReset, expectedMessages('metrics.jsonl', Buffer.from(metric(9))));
    const lastReset = client.messages.map((m) => 'reset' in m).lastIndexOf(true);
    const tail = client.messages.slice(lastReset);
    assert.deepEqual(tail, [
      { reset: 'metrics.jsonl' },
      ...expectedMessages('metrics.jsonl', Buffer.from(replacement)),
    ]);
  });

  test("Python's NaN and Infinity tokens travel as markers; a line over the 16 MiB cap is one malformed message", async () => {
    const dir = newRun('python');
    const metrics = join(dir, 'metrics.jsonl');
    const python = '{"step": 1, "t": 2, "loss": NaN, "grad_norm": Infinity, "lr": -Infinity, "note": "NaN stays"}\n';
    const huge = `{"step":2,"t":3,"blob":"${'b'.repeat(MAX_RECORD_BYTES)}"}\n`;
    const carriageReturn = '{"step":4,\r"t":5,\r"loss":1}\n'; // '\r' as JSON whitespace inside the line
    appendFileSync(metrics, python + huge + metric(3) + carriageReturn);
    const client = new FollowClient(dir);
    await client.waitFor(() => client.offsets['metrics.jsonl'] === readFileSync(metrics).length, 'all four lines');
    assert.equal(await client.end(), 0);
    const third = python.length + huge.length + metric(3).length;
    assert.deepEqual(client.fileMessages('metrics.jsonl'), [
      {
        file: 'metrics.jsonl',
        offset: python.length,
        record: { step: 1, t: 2, loss: 'NaN', grad_norm: 'Infinity', lr: '-Infinity', note: 'NaN stays' },
      },
      { file: 'metrics.jsonl', offset: python.length + huge.length, malformed: true },
      ...expectedMessages('metrics.jsonl', Buffer.from(metric(3))).map((m) => ({
        ...m,
        offset: m.offset + python.length + huge.length,
      })),
      { file: 'metrics.jsonl', offset: third + carriageReturn.length, record: { step: 4, t: 5, loss: 1 } },
    ]);
  });

  test('SIGTERM in the middle of a huge read ends it, with code 0', { timeout: 60_000 }, async (t) => {
    const dir = newRun('sigterm');
    const metrics = join(dir, 'metrics.jsonl');
    writeFileSync(metrics, '');
    // 4 TiB of zeros without a newline (sparse: no disk used). Reading it all takes far longer than
    // this test's timeout even on a fast idle machine, so an exit at all shows the stop is checked
    // per chunk; no clock decides (an exit "within 2 s" failed whenever the machine was loaded).
    truncateSync(metrics, 4 * 1024 ** 4);
    const client = new FollowClient(dir);
    await client.waitFor(() => client.count('ready') === 1, 'ready');
    await sleep(500); // into the read (a SIGTERM before it would end the follower just the same)
    const signalled = Date.now();
    client.child.kill('SIGTERM');
    const code = await client.exited;
    t.diagnostic(`exited ${Date.now() - signalled} ms after SIGTERM`);
    assert.equal(code, 0);
    assert.equal(client.offsets['metrics.jsonl'], 0, 'no record in it, so nothing consumed');
    rmSync(metrics); // no 4 TiB file left for tools that copy or archive .test-tmp
  });

  test('a --from offset that no longer fits its file is a reset, then the whole file', async () => {
    const dir = newRun('from-reset');
    const content = metric(1) + metric(2);
    writeFileSync(join(dir, 'metrics.jsonl'), content);
    writeFileSync(join(dir, 'samples.jsonl'), '');
    for (const from of [{ 'metrics.jsonl': content.length + 10 }, { 'metrics.jsonl': 5 }, { 'samples.jsonl': 3 }]) {
      const client = new FollowClient(dir, ['--from', JSON.stringify(from)]);
      const file = Object.keys(from)[0] as FollowedFile;
      await client.waitFor(
        () => client.count('reset') === 1 && client.offsets['metrics.jsonl'] === content.length,
        `the reset of ${JSON.stringify(from)}`,
      );
      assert.equal(await client.end(), 0);
      assert.deepEqual(
        client.messages.find((m) => 'reset' in m),
        { reset: file },
        JSON.stringify(from),
      );
      assert.deepEqual(client.fileMessages('metrics.jsonl'), expectedMessages('metrics.jsonl', Buffer.from(content)));
    }
  });

  test('run.json and the checkpoints are sent at start and whenever they change', async () => {
    const dir = newRun('runjson');
    writeRunJson(dir, 'running');
    const client = new FollowClient(dir);
    const runs = () =>
      client.messages
        .filter((m): m is RunMessage => 'run' in m)
        .map((m) => (m.run.ok ? m.run.run.status : m.run.error));
    const lists = () =>
      client.messages.filter((m): m is CheckpointsMessage => 'checkpoints' in m).map((m) => m.checkpoints);
    await client.waitFor(() => runs().length === 1 && lists().length === 1, 'the initial run.json and checkpoints');
    assert.deepEqual(lists()[0], []);
    writeRunJson(dir, 'running'); // rewritten, same content: nothing new
    await sleep(300);
    assert.deepEqual(runs(), ['running']);
    writeRunJson(dir, 'finished');
    await client.waitFor(() => runs().length === 2, 'the changed run.json');
    assert.deepEqual(runs(), ['running', 'finished']);

    const ckpt = join(dir, 'checkpoints', 'step-00000010');
    mkdirSync(join(dir, 'checkpoints', '.tmp-step-00000020'), { recursive: true }); // a save in progress is no checkpoint
    writeTestCheckpoint(dir, 10, 2.5);
    const expected = [{ step: 10, dir: ckpt, complete: true, eval_loss: 2.5 }];
    await client.waitFor(() => JSON.stringify(lists().at(-1)) === JSON.stringify(expected), 'the complete checkpoint');
    assert.equal(await client.end(), 0);
  });

  test('fs.watch wakes it long before the poll would', async () => {
    const dir = newRun('watch');
    // The poll comes after an hour, past the wait's guard: the record can only come because the watch
    // woke the follower (a 5 s bound on its arrival failed whenever a loaded machine was slower).
    const client = new FollowClient(dir, ['--poll-ms', '3600000']);
    await client.waitFor(() => client.count('checkpoints') === 1, 'the first scan');
    appendFileSync(join(dir, 'metrics.jsonl'), metric(1));
    await client.waitFor(() => client.offsets['metrics.jsonl'] > 0, 'the record, woken by fs.watch');
    assert.equal(await client.end(), 0);
  });

  test('heartbeats arrive while nothing changes; SIGTERM, SIGINT, SIGHUP and a closed channel end it with code 0', async () => {
    const dir = newRun('heartbeat');
    appendFileSync(
      join(dir, 'events.jsonl'),
      json({ step: 0, t: 1, kind: 'start', level: 'info', message: 'go' }) + '\n\n',
    );
    for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      const before = Date.now();
      const client = new FollowClient(dir);
      await client.waitFor(() => client.count('heartbeat') >= 2, 'two heartbeats');
      const beat = client.messages.find((m) => 'heartbeat' in m);
      // A wall time in ms, sent while this follower ran (no bound on how long a loaded machine took).
      assert.ok(beat && 'heartbeat' in beat && beat.t >= before && beat.t <= Date.now(), JSON.stringify(beat));
      assert.equal(
        client.offsets['events.jsonl'],
        readFileSync(join(dir, 'events.jsonl')).length,
        'heartbeat offsets step past blank lines',
      );
      client.child.kill(signal);
      assert.equal(await client.exited, 0, signal);
    }
    const client = new FollowClient(dir);
    await client.waitFor(() => client.count('ready') === 1, 'the start');
    client.child.stdout.destroy(); // the reading end goes away: the next heartbeat meets EPIPE
    assert.equal(await client.exited, 0, 'a closed channel');
  });

  test('a missing run folder, a bad --from or a wrong option: one error line and exit code 2', () => {
    const dir = newRun('errors');
    const cases: [string[], RegExp][] = [
      [[join(dir, 'nope')], /No run directory at .*nope/],
      [[dir, '--from', '{"metrics.jsonl":'], /--from is not valid JSON/],
      [[dir, '--from', '{"metrics.jsonl":-4}'], /offset of metrics\.jsonl must be a non-negative integer/],
      [[dir, '--from', '{"weights.bin":0}'], /unknown file "weights\.bin"/],
      [[dir, '--since', '3'], /Unknown option --since/],
      [[], /Usage: steelscope follow/],
    ];
    for (const [args, message] of cases) {
      const r = runCli(['follow', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, r.stdout);
      const m = asFollowMessage(JSON.parse(lines[0]));
      assert.ok(m && 'error' in m, lines[0]);
      assert.match(m.error.message, message);
    }
  });

  test('a large file streams in chunks, with backpressure from a slow reader', async () => {
    const dir = newRun('large');
    const metrics = join(dir, 'metrics.jsonl');
    const pad = 'x'.repeat(100);
    const lines: string[] = [];
    for (let step = 0; step < 300_000; step++) lines.push(json({ step, t: step, kind: 'train', loss: 1, note: pad }));
    lines.splice(1000, 0, json({ step: -1, t: 0, long: 'y'.repeat(3 << 20) })); // one line longer than a read chunk
    writeFileSync(metrics, lines.join(''));
    const size = readFileSync(metrics).length;
    let count = 0;
    let lastOffset = 0;
    let inOrder = true;
    const client = new FollowClient(dir, [], {
      keep: false,
      onMessage: (m) => {
        if (!('file' in m)) return;
        inOrder &&= 'record' in m && m.offset > lastOffset;
        lastOffset = m.offset;
        count++;
      },
    });
    // The test stops reading: the follower must stop reading too, long before the end of the file.
    client.child.stdout.pause();
    await sleep(1500);
    const io = `/proc/${client.child.pid}/io`; // Linux: bytes the process has read so far
    if (existsSync(io)) {
      const read = Number(/rchar: (\d+)/.exec(readFileSync(io, 'utf8'))?.[1]);
      assert.ok(read < size / 2, `read ${read} of ${size} bytes while nobody read its output`);
    }
    client.child.stdout.resume();
    await client.waitFor(() => client.offsets['metrics.jsonl'] === size, 'the whole file', 60_000);
    assert.equal(await client.end(), 0);
    assert.equal(count, lines.length);
    assert.ok(inOrder, 'every line once, in order');
    rmSync(dirname(dir), { recursive: true }); // 50 MB is not worth keeping for inspection
  });

  test('the followed metrics of a real training run are the lines of its metrics.jsonl', async () => {
    const base = scratch('follow-train');
    const dir = join(base, 'run');
    mkdirSync(dir); // the trainer accepts an empty folder, so the follower can be there first
    const client = new FollowClient(dir);
    await client.waitFor(() => client.count('ready') === 1, 'the follower to start');
    const trainer = spawnCli([
      'train',
      '--data',
      poetrySubset(base, 300),
      '--run-dir',
      dir,
      '--steps',
      '20',
      ...SMALL_SETS,
    ]);
    const code = await new Promise<number | null>((resolve) => trainer.once('exit', resolve));
    assert.equal(code, 0);
    const metrics = readFileSync(join(dir, 'metrics.jsonl'));
    const finished = () => client.messages.some((m) => 'run' in m && m.run.ok && m.run.run.status === 'finished');
    await client.waitFor(
      () => client.offsets['metrics.jsonl'] === metrics.length && finished(),
      'the run to be followed to its end',
    );
    await client.waitFor(
      () => client.offsets['events.jsonl'] === readFileSync(join(dir, 'events.jsonl')).length,
      'the events',
    );
    // The list follows run.json within the same pass; ending before it arrives would drop it.
    const lastList = () =>
      client.messages.filter((m): m is CheckpointsMessage => 'checkpoints' in m).at(-1)?.checkpoints ?? [];
    await client.waitFor(() => lastList().length === 2, 'the last checkpoint list');
    assert.equal(await client.end(), 0);
    const followed = client.fileMessages('metrics.jsonl').map((m) => ('record' in m ? m.record : 'malformed'));
    assert.deepEqual(followed, parseJsonl(metrics, isMetricRecord).records);
    assert.equal(client.count('reset'), 0);
    assert.deepEqual(
      lastList().map((c) => [c.step, c.complete]),
      [
        [10, true],
        [20, true],
      ],
    );
  });
});
