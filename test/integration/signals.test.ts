// SIGTERM ends `train` and `serve` promptly whatever they are doing: a step of many micro-batches,
// sample generation, a long generation request. `train` still writes its checkpoint first, of
// the last completed step (a step cut short is dropped, and its batches come again on resume).
// Real processes; the elapsed times are diagnostics, the outcomes are the assertions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REQUEUE_EXIT_CODE } from '../../src/shared/run';
import {
  CLI,
  poetrySubset,
  readMetrics,
  readSamples,
  runCli,
  scratch,
  sleep,
  SMALL_SETS,
  spawnCli,
  TEST_ENV,
  trainLosses,
} from '../helpers';

/** The longest the tests wait for an exit; the old code took minutes in every case below. */
const EXIT_CAP_MS = 60_000;

async function until(what: string, probe: () => boolean, child: ChildProcess, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (child.exitCode !== null) throw new Error(`the process exited (${child.exitCode}) before ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** SIGTERM now; resolves with the exit code and the ms it took (rejects past EXIT_CAP_MS). */
async function terminate(child: ChildProcess): Promise<{ code: number | null; ms: number }> {
  const exited = new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
  const start = performance.now();
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<never>(
    (_, reject) =>
      (timer = setTimeout(() => reject(new Error(`no exit within ${EXIT_CAP_MS} ms of SIGTERM`)), EXIT_CAP_MS)),
  );
  try {
    const code = await Promise.race([exited, cap]);
    return { code, ms: performance.now() - start };
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
}

const runJson = (runDir: string) =>
  JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as { status: string; step: number };
const ckptDone = (runDir: string, step: number) =>
  existsSync(join(runDir, 'checkpoints', `step-${String(step).padStart(8, '0')}`, 'DONE'));

test('train: SIGTERM in the middle of a long step drops that step, checkpoints the last one and exits; resume is exact', async (t) => {
  const dir = scratch('signal-step');
  const data = poetrySubset(dir, 300);
  // 1000 micro-batches a step: seconds to tens of seconds on two cores.
  const sets = [...SMALL_SETS, '--set', 'grad_accum=1000', '--set', 'sample_every=0', '--set', 'eval_every=0'];
  const runDir = join(dir, 'run');
  const child = spawnCli(['train', '--data', data, '--run-dir', runDir, '--steps', '3', ...sets]);
  try {
    await until('step 0', () => readMetrics(runDir).some((m) => m.kind === 'train' && m.step === 0), child);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const { code, ms } = await terminate(child); // step 1 has just begun
  t.diagnostic(`train exited ${ms.toFixed(0)} ms after SIGTERM, mid-step`);
  assert.equal(code, 0);
  assert.equal(runJson(runDir).status, 'stopped');
  assert.ok(ckptDone(runDir, 1), 'the checkpoint of the last completed step (1) was written');
  assert.ok(!readMetrics(runDir).some((m) => m.kind === 'train' && m.step === 1), 'the step cut short left no record');

  // The dropped step's batches come again: losses match a run that was never interrupted.
  const resumed = runCli(['resume', runDir, '--steps', '2']);
  assert.equal(resumed.code, 0, resumed.stderr);
  const reference = join(dir, 'reference');
  const trained = runCli(['train', '--data', data, '--run-dir', reference, '--steps', '2', ...sets]);
  assert.equal(trained.code, 0, trained.stderr);
  assert.equal(trainLosses(runDir).get(1), trainLosses(reference).get(1));
});

test('train: SIGTERM while it generates samples checkpoints and exits without the cut sample', async (t) => {
  const dir = scratch('signal-sample');
  const data = poetrySubset(dir, 300);
  // A sample of 10^5 tokens at step 0 (right after the step-0 eval): minutes of generation.
  const sets = [...SMALL_SETS, '--set', 'sample_tokens=100000', '--set', 'sample_every=10'];
  const runDir = join(dir, 'run');
  const child = spawnCli(['train', '--data', data, '--run-dir', runDir, '--steps', '20', ...sets]);
  try {
    await until('the step-0 eval', () => readMetrics(runDir).some((m) => m.kind === 'eval' && m.step === 0), child);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const { code, ms } = await terminate(child);
  t.diagnostic(`train exited ${ms.toFixed(0)} ms after SIGTERM, while sampling`);
  assert.equal(code, 0);
  assert.equal(runJson(runDir).status, 'stopped');
  assert.ok(ckptDone(runDir, 0), 'the step-0 checkpoint was written');
  assert.deepEqual(readSamples(runDir), [], 'no cut-short sample was written');
});

test('serve: SIGTERM during a long generation answers it as cancelled and exits with code 0', async (t) => {
  const dir = scratch('signal-serve');
  const runDir = join(dir, 'run');
  assert.equal(
    runCli(['train', '--data', poetrySubset(dir, 300), '--run-dir', runDir, '--steps', '2', ...SMALL_SETS]).code,
    0,
  );
  const child = spawn(process.execPath, [CLI, 'serve', runDir], { env: TEST_ENV, stdio: ['pipe', 'pipe', 'ignore'] });
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  try {
    await until('ready', () => lines.some((l) => l.includes('"ready"')), child, 60_000);
    child.stdin.write(
      JSON.stringify({
        id: 1,
        method: 'generate',
        params: { prompt: '春', max_tokens: 1_000_000, temperature: 1, seed: 3 },
      }) + '\n',
    );
    await until('tokens', () => lines.filter((l) => l.includes('"token"')).length > 10, child, 60_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const { code, ms } = await terminate(child);
  t.diagnostic(`serve exited ${ms.toFixed(0)} ms after SIGTERM, mid-generation`);
  assert.equal(code, 0);
  const done = lines
    .map((l) => JSON.parse(l) as { id?: unknown; done?: boolean; reason?: string })
    .find((m) => m.done && m.id === 1);
  assert.equal(done?.reason, 'cancelled');
});

test('train: SIGUSR1 (Slurm: time limit near), then the TERM a batch shell adds: one checkpoint, exit 75 to requeue', async () => {
  const dir = scratch('signal-usr1');
  const data = poetrySubset(dir, 300);
  const runDir = join(dir, 'run');
  const sets = [...SMALL_SETS, '--set', 'sample_every=0', '--set', 'checkpoint_every=1000000'];
  const args = ['train', '--data', data, '--run-dir', runDir, '--steps', '100000', ...sets];
  const child = spawn(process.execPath, [CLI, ...args], { env: TEST_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await until('step 2', () => readMetrics(runDir).some((m) => m.kind === 'train' && m.step === 2), child);
    child.kill('SIGUSR1');
    await until('USR1 taken', () => /SIGUSR1: saving a checkpoint/.test(stderr), child);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  child.kill('SIGTERM'); // not a second signal, which would exit without the checkpoint
  assert.equal(await exited, REQUEUE_EXIT_CODE, stderr);
  const info = runJson(runDir);
  assert.equal(info.status, 'stopped');
  assert.ok(ckptDone(runDir, info.step), `the checkpoint of the last step (${info.step})`);
});

test('train whose output nobody reads any more (`| head`, a `| tee` ended by Ctrl-C) trains on and saves its run', async () => {
  const dir = scratch('closed-output');
  const runDir = join(dir, 'run');
  const args = ['train', '--data', poetrySubset(dir, 300), '--run-dir', runDir, '--steps', '12', ...SMALL_SETS];
  const child = spawn(process.execPath, [CLI, ...args], { env: TEST_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Both reading ends close before the trainer has written a line: every write it makes meets EPIPE.
  child.stdout.destroy();
  child.stderr.destroy();
  assert.equal(await exited, 0);
  const info = runJson(runDir);
  assert.equal(info.status, 'finished');
  assert.ok(ckptDone(runDir, 12), 'the final checkpoint');
});
