// system.jsonl from real runs of both engines: a record at start and at least one per 10 s, with
// CPU and RSS, and the GPU fields of the `nvidia-smi` found on PATH (a fake one printing fixed CSV).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseJsonl } from '../../src/shared/jsonl';
import { isSystemRecord, SYSTEM_FILE, type SystemRecord } from '../../src/shared/system';
import { CLI, poetrySubset, scratch, sleep, SMALL_SETS, TEST_ENV } from '../helpers';
import { torchFlags, TORCH_SKIP } from '../torch';
import { NVIDIA_SMI_OUTPUT } from '../nvidia-smi';

/** A folder holding an `nvidia-smi` that prints the documented CSV of four GPUs. */
function fakeNvidiaSmi(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'gpus.csv'), NVIDIA_SMI_OUTPUT);
  writeFileSync(join(bin, 'nvidia-smi'), `#!/bin/sh\ncat '${join(bin, 'gpus.csv')}'\n`);
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
  return bin;
}

const readSystem = (run: string): SystemRecord[] =>
  existsSync(join(run, SYSTEM_FILE)) ? parseJsonl(readFileSync(join(run, SYSTEM_FILE)), isSystemRecord).records : [];

function assertRecords(records: SystemRecord[]): void {
  for (const r of records) {
    assert.ok(typeof r.cpu_pct === 'number' && r.cpu_pct >= 0, `cpu_pct in ${JSON.stringify(r)}`);
    assert.ok(typeof r.rss_gb === 'number' && r.rss_gb > 0, 'rss_gb');
    assert.ok(typeof r.host_mem_total_gb === 'number', 'host_mem_total_gb');
    assert.ok(Number.isInteger(r.step), 'step');
    assert.equal(r['gpu0/name'], 'NVIDIA H100 80GB HBM3');
    assert.equal(r['gpu0/util_pct'], 100);
    assert.equal(r['gpu0/mem_used_gb'], 82.912);
    assert.equal(r['gpu1/power_w'], undefined, '[N/A] power is left out');
    assert.equal(r['gpu2/temp_c'], 38);
  }
}

/** Trains until `enough` says so, then stops the run (SIGTERM) and waits for it to exit. */
async function trainUntil(
  args: string[],
  env: NodeJS.ProcessEnv,
  run: string,
  enough: (r: SystemRecord[]) => boolean,
): Promise<void> {
  const child = spawn(process.execPath, [CLI, 'train', ...args], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  let code: number | null | undefined;
  void exited.then((c) => (code = c));
  try {
    while (code === undefined && !enough(readSystem(run))) await sleep(250);
  } finally {
    if (code === undefined) child.kill('SIGTERM');
  }
  assert.equal(await exited, 0);
}

test('the TF.js trainer writes system.jsonl at start and every 10 s (the real interval), with CPU, RSS and GPUs', async () => {
  const dir = scratch('system-tfjs');
  const run = join(dir, 'run');
  const env: NodeJS.ProcessEnv = { ...TEST_ENV, PATH: `${fakeNvidiaSmi(dir)}:${process.env.PATH ?? ''}` };
  delete env.STEELSCOPE_SYSTEM_INTERVAL_MS;
  // No checkpoint, eval or sample between the ticks: a checkpoint's fsync on a busy disk can hold a tick
  // up for seconds; steps alone hold one up by a step's time (milliseconds here).
  const quiet = ['checkpoint_every=0', 'eval_every=0', 'sample_every=0'].flatMap((s) => ['--set', s]);
  const args = ['--data', poetrySubset(dir, 400), '--run-dir', run, '--steps', '1000000', ...SMALL_SETS, ...quiet];
  await trainUntil(args, env, run, (r) => r.length >= 3);
  const records = readSystem(run);
  assert.ok(records.length >= 3, `${records.length} records`);
  assertRecords(records);
  assert.equal(records[0].step, 0, 'the first record is written at start, before any step');
  // No upper bound on the gaps: a loaded machine holds ticks up (the schedule itself, start + k × 10 s
  // with a late tick made up for by none, is the unit test's, on an injected clock). A tick is never
  // early, so the k-th record is at least k × 10 s after the first: the real interval, not a test's
  // shortened one (1 s of slack for timer rounding, and wall time against the monotonic clock).
  for (let k = 1; k < records.length; k++) {
    assert.ok(records[k].t > records[k - 1].t, 'each record later than the one before');
    const since = records[k].t - records[0].t;
    assert.ok(since >= k * 10_000 - 1000, `record ${k} ${since} ms after the first: one per 10 s`);
  }
});

test('the torch engine writes the same records (interval shortened for the test)', { skip: TORCH_SKIP }, async () => {
  const dir = scratch('system-torch');
  const run = join(dir, 'run');
  const env = {
    ...TEST_ENV,
    PATH: `${fakeNvidiaSmi(dir)}:${process.env.PATH ?? ''}`,
    STEELSCOPE_SYSTEM_INTERVAL_MS: '500',
  };
  const args = [
    '--data',
    poetrySubset(dir, 400),
    '--run-dir',
    run,
    '--steps',
    '1000000',
    ...SMALL_SETS,
    ...torchFlags(1),
  ];
  await trainUntil(args, env, run, (r) => r.length >= 3);
  const records = readSystem(run);
  assert.ok(records.length >= 3, `${records.length} records`);
  assertRecords(records);
  assert.ok(
    records.some((r) => (r.step ?? 0) > 0),
    'the step moves with training',
  );
});
