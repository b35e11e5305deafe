// The PyTorch engine under torchrun on CPU (gloo): 2 processes train what 1 process trains with
// the same global batch; a kill -9 of the whole tree between checkpoints resumes exactly; a rank
// that dies fails the run with its error in events.jsonl, without hanging.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { poetrySubset, readEvents, runCli, scratch, sleep, SMALL_SETS, spawnCli, trainLosses, until } from '../helpers';
import { processesMentioning, torchFlags, torchPython, TORCH_SKIP } from '../torch';

/** Steps of the complete checkpoints (DONE written) of a run. */
function completeCheckpoints(run: string): number[] {
  const root = join(run, 'checkpoints');
  if (!existsSync(root)) return [];
  const names = readdirSync(root).filter((n) => /^step-\d{8}$/.test(n) && existsSync(join(root, n, 'DONE')));
  return names.map((n) => Number(n.slice('step-'.length)));
}

const status = (run: string): string =>
  (JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { status: string }).status;

/** SIGKILL; a process that ended since it was listed is no error. */
function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function waitForStep(run: string, atLeast: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Math.max(-1, ...trainLosses(run).keys()) < atLeast) {
    if (Date.now() > deadline) throw new Error(`no train record for step ${atLeast} within ${timeoutMs} ms`);
    await sleep(5);
  }
}

test(
  'torchrun 2 processes (gloo) equal 1 process with the same global batch: 20 steps within 1e-4',
  { skip: TORCH_SKIP },
  (t) => {
    const dir = scratch('torch-ddp');
    const data = poetrySubset(dir, 400);
    const common = ['train', '--data', data, '--steps', '20', ...SMALL_SETS];
    const one = runCli([...common, '--run-dir', join(dir, 'one'), ...torchFlags(1)], 300_000);
    assert.equal(one.code, 0, one.stderr);
    const two = runCli([...common, '--run-dir', join(dir, 'two'), ...torchFlags(2)], 300_000);
    assert.equal(two.code, 0, two.stderr);
    const a = trainLosses(join(dir, 'one'));
    const b = trainLosses(join(dir, 'two'));
    assert.equal(a.size, 20);
    let worst = 0;
    for (const [step, loss] of a) {
      const rel = Math.abs((b.get(step) ?? NaN) - loss) / Math.abs(loss);
      worst = Math.max(worst, rel);
      assert.ok(rel <= 1e-4, `step ${step}: 2 processes ${b.get(step)} vs 1 process ${loss}`);
    }
    const info = JSON.parse(readFileSync(join(dir, 'two', 'run.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(info.engine, 'torch');
    assert.equal(info.world_size, 2);
    t.diagnostic(`largest relative loss difference, 2 vs 1 process: ${worst.toExponential(2)}`);
  },
);

// Slower steps than SMALL_SETS alone, so the kill lands between checkpoints.
const SLOW = [
  ...SMALL_SETS,
  '--set',
  'n_embd=128',
  '--set',
  'seq_len=128',
  '--set',
  'batch_size=8',
  '--set',
  'checkpoint_every=10',
];

test(
  'kill -9 of the whole torchrun tree between checkpoints, then resume: every later step equals the uninterrupted run',
  { skip: TORCH_SKIP },
  async () => {
    const dir = scratch('torch-resume');
    const data = poetrySubset(dir, 400);
    const common = ['train', '--data', data, '--steps', '40', ...SLOW, ...torchFlags(2)];
    const ref = runCli([...common, '--run-dir', join(dir, 'reference')], 300_000);
    assert.equal(ref.code, 0, ref.stderr);
    const killed = join(dir, 'killed');
    const child = spawnCli([...common, '--run-dir', killed]);
    try {
      await waitForStep(killed, 12, 120_000);
    } finally {
      for (const pid of processesMentioning(killed)) killIfAlive(pid);
    }
    await new Promise((resolve) =>
      child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve),
    );
    // The supervisor's exit says nothing of the ranks': a process killed with SIGKILL lingers until
    // the kernel has torn it down, longer than any fixed pause on a loaded machine. Wait for that;
    // a survivor is the failure (until gives up after a minute).
    await until('every process of the run gone', () => processesMentioning(killed).length === 0);
    const saved = completeCheckpoints(killed);
    assert.ok(!saved.includes(40), `killed before the end (checkpoints ${saved.join(', ')})`);
    const resumed = runCli(['resume', killed, '--nproc', '2', '--python', torchPython()], 300_000);
    assert.equal(resumed.code, 0, resumed.stderr);
    const from = Math.max(...saved.filter((s) => s > 0), 0);
    const expected = trainLosses(join(dir, 'reference'));
    const actual = trainLosses(killed);
    for (let step = from; step < 40; step++)
      assert.equal(actual.get(step), expected.get(step), `step ${step} after resuming at ${from}`);
    assert.equal(status(killed), 'finished');
  },
);

test(
  'a rank killed mid-run fails the run with its error in events.jsonl, in bounded time',
  { skip: TORCH_SKIP },
  async () => {
    const dir = scratch('torch-rank-dies');
    const data = poetrySubset(dir, 400);
    const run = join(dir, 'run');
    const child = spawnCli(['train', '--data', data, '--run-dir', run, '--steps', '400', ...SLOW, ...torchFlags(2)]);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitForStep(run, 3, 120_000);
    const rank1 = processesMentioning(run, 'RANK=1');
    assert.equal(rank1.length, 1, 'one process is rank 1');
    process.kill(rank1[0], 'SIGKILL');
    const code = await Promise.race([exited, sleep(90_000).then(() => 'timeout' as const)]);
    assert.notEqual(code, 'timeout', 'the run ended within 90 s of the rank dying');
    assert.equal(code, 1);
    assert.equal(status(run), 'failed');
    const crashes = readEvents(run).filter((e) => e.kind === 'crash');
    assert.ok(
      crashes.some((e) => /rank 1 exited with code -9/.test(e.message)),
      crashes.map((e) => e.message).join(' | '),
    );
  },
);
