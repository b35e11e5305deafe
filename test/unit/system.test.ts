// system.jsonl: nvidia-smi's CSV read the same way in TypeScript and in the torch engine's Python,
// and the trainer's sampler (a timer, nvidia-smi with a time limit, never blocking the event loop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gpuFields, isSystemRecord, parseNvidiaSmiCsv, type SystemRecord } from '../../src/shared/system';
import { nextTickDelay, samplerInterval, startSystemSampler, type SamplerClock } from '../../src/core/train/system';
import { NVIDIA_SMI_OUTPUT } from '../nvidia-smi';
import { nearestByTime } from '../../src/shared/series';

const EXPECTED = [
  {
    index: 0,
    name: 'NVIDIA H100 80GB HBM3',
    util_pct: 100,
    mem_used_gb: 82.912,
    mem_total_gb: 85.521,
    power_w: 698.53,
    temp_c: 72,
  },
  { index: 1, name: 'NVIDIA A100-SXM4-80GB', mem_used_gb: 0.004, mem_total_gb: 85.899, temp_c: 34 },
  { index: 2, name: 'Tesla T4', util_pct: 0, mem_used_gb: 0, mem_total_gb: 16.106, temp_c: 38 },
  {
    index: 3,
    name: 'NVIDIA RTX 6000 Ada Generation, Rev 2',
    util_pct: 17,
    mem_used_gb: 1.074,
    mem_total_gb: 51.527,
    power_w: 35.2,
    temp_c: 41,
  },
];

test('nvidia-smi rows: every number read, [N/A] and [Not Supported] left out, memory MiB → GB, a comma in a name kept', () => {
  assert.deepEqual(parseNvidiaSmiCsv(NVIDIA_SMI_OUTPUT), EXPECTED);
  assert.deepEqual(parseNvidiaSmiCsv(NVIDIA_SMI_OUTPUT.replaceAll('\n', '\r\n')), EXPECTED, 'CRLF line ends');
});

test('nvidia-smi failing prints no rows: driver errors, "No devices were found", a header line', () => {
  const failures = [
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    'No devices were found',
    'index, name, utilization.gpu [%], memory.used [MiB], memory.total [MiB], power.draw [W], temperature.gpu',
    '',
  ];
  for (const text of failures) assert.deepEqual(parseNvidiaSmiCsv(text), [], text);
});

test('GPU rows become flat gpu<index>/<field> fields of a system record', () => {
  const fields = gpuFields(parseNvidiaSmiCsv(NVIDIA_SMI_OUTPUT));
  assert.equal(fields['gpu0/util_pct'], 100);
  assert.equal(fields['gpu0/power_w'], 698.53);
  assert.equal(fields['gpu1/name'], 'NVIDIA A100-SXM4-80GB');
  assert.equal('gpu1/power_w' in fields, false, '[N/A] is a gap, not a zero');
  assert.equal(fields['gpu3/temp_c'], 41);
  assert.ok(isSystemRecord({ t: 1, step: 3, cpu_pct: 50, ...fields }));
  assert.ok(isSystemRecord({ t: 1, cpu_pct: 50 }), 'step is optional');
  assert.equal(isSystemRecord({ step: 3, cpu_pct: 50 }), false, 't is required');
  assert.equal(isSystemRecord({ t: 1, step: 1.5 }), false);
});

/** Debian's python3 (the torch engine's); the parser itself needs nothing but the standard library. */
const PYTHON = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', 'pass']).status === 0);

test('the torch engine reads the same rows to the same fields', { skip: PYTHON ? false : 'no python3 here' }, () => {
  const script =
    'import json,sys; import system; rows = system.parse_nvidia_smi_csv(sys.stdin.read()); print(json.dumps([rows, system.gpu_fields(rows)]))';
  const done = spawnSync(PYTHON as string, ['-c', script], {
    input: NVIDIA_SMI_OUTPUT,
    cwd: resolve('src/engines/torch'),
    encoding: 'utf8',
  });
  assert.equal(done.status, 0, done.stderr);
  const [rows, fields] = JSON.parse(done.stdout) as [unknown, unknown];
  assert.deepEqual(rows, EXPECTED);
  assert.deepEqual(fields, gpuFields(EXPECTED));
});

test('the interval is 10 s unless a test asks for less through STEELSCOPE_SYSTEM_INTERVAL_MS', () => {
  assert.equal(samplerInterval({}), 10_000);
  assert.equal(samplerInterval({ STEELSCOPE_SYSTEM_INTERVAL_MS: '500' }), 500);
  assert.equal(samplerInterval({ STEELSCOPE_SYSTEM_INTERVAL_MS: 'soon' }), 10_000);
  assert.equal(samplerInterval({ STEELSCOPE_SYSTEM_INTERVAL_MS: '0' }), 10_000);
});

/** A folder with an `nvidia-smi` that runs `body`, first on PATH while `fn` runs. */
async function withFakeNvidiaSmi(body: string, fn: () => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-smi-'));
  writeFileSync(join(dir, 'nvidia-smi'), `#!/bin/sh\n${body}\n`);
  chmodSync(join(dir, 'nvidia-smi'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path ?? ''}`;
  try {
    await fn();
  } finally {
    process.env.PATH = path;
    rmSync(dir, { recursive: true, force: true });
  }
}

function collect(
  intervalMs: number,
  queryTimeoutMs: number,
  until: (records: SystemRecord[]) => boolean,
): Promise<SystemRecord[]> {
  // The sampler's timer does not keep a process alive (a finished trainer exits); this test's does.
  const keepAlive = setInterval(() => undefined, 1000);
  return new Promise<SystemRecord[]>((done) => {
    const records: SystemRecord[] = [];
    const sampler = startSystemSampler(
      (r) => {
        records.push(r);
        if (until(records)) {
          sampler.stop();
          done(records);
        }
      },
      () => records.length * 10,
      { intervalMs, queryTimeoutMs },
    );
  }).finally(() => clearInterval(keepAlive));
}

test('the sampler writes at once, then every interval: CPU, RSS, host memory, the step, the GPUs nvidia-smi reports', async () => {
  const output = join(mkdtempSync(join(tmpdir(), 'steelscope-smi-out-')), 'out.csv');
  writeFileSync(output, NVIDIA_SMI_OUTPUT);
  await withFakeNvidiaSmi(`cat '${output}'`, async () => {
    // nvidia-smi's time limit far above a `cat`'s time, however loaded the machine: this test is about
    // the records, the cut-off is the next test's.
    const records = await collect(150, 60_000, (r) => r.length === 3);
    for (const r of records) {
      assert.ok(typeof r.cpu_pct === 'number' && r.cpu_pct >= 0, 'cpu_pct');
      assert.ok(typeof r.rss_gb === 'number' && r.rss_gb > 0, 'rss_gb');
      assert.ok(typeof r.host_mem_total_gb === 'number' && typeof r.host_mem_used_gb === 'number');
      assert.ok(r.host_mem_used_gb <= r.host_mem_total_gb);
      assert.equal(r['gpu0/name'], 'NVIDIA H100 80GB HBM3');
      assert.equal(r['gpu0/util_pct'], 100);
      assert.equal(r['gpu3/power_w'], 35.2);
    }
    assert.deepEqual(
      records.map((r) => r.step),
      [0, 10, 20],
    );
    assert.ok(records[1].t > records[0].t && records[2].t > records[1].t);
  });
});

test('ticks aim at start + k × interval: a late one neither pushes the next back nor is repeated', () => {
  assert.equal(nextTickDelay(1000, 1000, 10_000), 10_000, 'the first after a whole interval');
  assert.equal(nextTickDelay(1000, 11_000, 10_000), 10_000, 'on time');
  assert.equal(nextTickDelay(1000, 14_000, 10_000), 7_000, 'held up 3 s by a step: the next still at 21 s');
  assert.equal(nextTickDelay(1000, 46_000, 10_000), 5_000, 'held up past three ticks: one tick, at 51 s');
  assert.equal(nextTickDelay(1000, 20_999.5, 10_000), 0.5);
});

/** A clock the test moves: each schedule() is recorded with its delay; fire() runs the pending tick. */
class TestClock implements SamplerClock {
  time = 5_000;
  delays: number[] = [];
  private pending: (() => void) | undefined;
  private onSchedule: (() => void) | undefined;

  now(): number {
    return this.time;
  }

  schedule(fn: () => void, ms: number): () => void {
    assert.equal(this.pending, undefined, 'one timer at a time');
    this.delays.push(ms);
    this.pending = fn;
    this.onSchedule?.();
    return () => (this.pending = undefined);
  }

  /** Resolves once a tick is scheduled (the sampler's nvidia-smi query is a child process first). */
  scheduled(): Promise<void> {
    return this.pending ? Promise.resolve() : new Promise((done) => (this.onSchedule = done));
  }

  /** Moves the clock to `time` and runs the tick due. */
  fire(time: number): void {
    const fn = this.pending;
    assert.ok(fn, 'a tick is scheduled');
    this.pending = undefined;
    this.time = time;
    fn();
  }

  get idle(): boolean {
    return this.pending === undefined;
  }
}

test('the sampler keeps the interval it is given on its clock, a record per tick, until stopped', async () => {
  const output = join(mkdtempSync(join(tmpdir(), 'steelscope-smi-out-')), 'out.csv');
  writeFileSync(output, NVIDIA_SMI_OUTPUT);
  await withFakeNvidiaSmi(`cat '${output}'`, async () => {
    const clock = new TestClock();
    const records: SystemRecord[] = [];
    const sampler = startSystemSampler(
      (r) => records.push(r),
      () => records.length,
      { intervalMs: 10_000, queryTimeoutMs: 60_000, clock },
    );
    await clock.scheduled(); // after the record at start
    for (const time of [15_000, 28_000, 61_000]) {
      clock.fire(time);
      await clock.scheduled();
    }
    // On time at 15 s: the next at 25 s; 3 s late at 28 s: still at 35 s; that one 26 s late at 61 s:
    // those of 45 s and 55 s are not made up for, the next is at 65 s.
    assert.deepEqual(clock.delays, [10_000, 10_000, 7_000, 4_000]);
    assert.deepEqual(
      records.map((r) => r.step),
      [0, 1, 2, 3],
    );
    for (let i = 1; i < records.length; i++) assert.ok(records[i].t >= records[i - 1].t, 'wall times in order');
    sampler.stop();
    assert.ok(clock.idle, 'stop() cancels the pending tick');
  });
});

test('an nvidia-smi that hangs is cut off: records still come, without GPU fields, and the event loop stays free', async () => {
  await withFakeNvidiaSmi('sleep 30', async () => {
    // A timer due 1 ms from now runs before the first record, which waits for nvidia-smi's 300 ms
    // time limit, unless the query blocks the event loop (then the record comes first). An order, not
    // a count of timer turns, which a starved process on a loaded machine could come short of.
    let timerRan = false;
    setTimeout(() => (timerRan = true), 1);
    let ranBeforeFirstRecord: boolean | undefined;
    const records = await collect(100, 300, (r) => {
      ranBeforeFirstRecord ??= timerRan;
      return r.length === 2;
    });
    assert.equal(
      Object.keys(records[0]).some((k) => k.startsWith('gpu')),
      false,
    );
    assert.equal(ranBeforeFirstRecord, true, 'timers run while nvidia-smi hangs');
  });
});

test(
  'without nvidia-smi the records have no GPU fields',
  { skip: existsSync('/usr/bin/nvidia-smi') ? 'nvidia-smi is installed' : false },
  async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const records = await collect(100, 300, (r) => r.length === 2);
      assert.equal(
        Object.keys(records[1]).some((k) => k.startsWith('gpu')),
        false,
      );
      assert.ok(typeof records[1].cpu_pct === 'number');
    } finally {
      process.env.PATH = path;
    }
  },
);

test('a system row takes the step of the train record nearest in time (ties: the earlier)', () => {
  const trainT = [1000, 2000, 3000, 10_000];
  const trainStep = [0, 1, 2, 3];
  const at = nearestByTime(trainT, trainStep, 4, [0, 1400, 1500, 1600, 6400, 6500, 6600, 20_000, NaN]);
  assert.deepEqual([...at], [0, 0, 0, 1, 2, 2, 3, 3, NaN]);
  assert.deepEqual([...nearestByTime([], [], 0, [5])], [NaN], 'no train records: no step');
});
