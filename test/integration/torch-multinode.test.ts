// The PyTorch engine as a Slurm job runs it, on this machine: two CLI supervisors (two "nodes" on
// 127.0.0.1, one process each) meeting in a c10d rendezvous train what one 2-process standalone
// torchrun trains; SIGUSR1 to every process of a run (as Slurm signals a job step) checkpoints it
// and exits with the status that requeues the job. Real processes, gloo on CPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REQUEUE_EXIT_CODE } from '../../src/shared/run';
import {
  CLI,
  freePort,
  poetrySubset,
  runCli,
  scratch,
  sleep,
  SMALL_SETS,
  TEST_ENV,
  trainLosses,
  until,
} from '../helpers';
import { processesMentioning, torchFlags, TORCH_SKIP } from '../torch';

/** The CLI with extra environment; resolves with its exit code and stderr (`stderr()`: so far). */
function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { exited: Promise<{ code: number | null; stderr: string }>; stderr: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...TEST_ENV, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once('close', (code) => {
      process.removeListener('exit', reap);
      resolve({ code, stderr });
    }),
  );
  return { exited, stderr: () => stderr };
}

const runJson = (run: string) =>
  JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { status: string; step: number; world_size: number };

test(
  'two supervisors ("nodes" on 127.0.0.1, 1 process each) in a c10d rendezvous equal one 2-process torchrun within 1e-4',
  { skip: TORCH_SKIP },
  async (t) => {
    const dir = scratch('torch-2nodes');
    const data = poetrySubset(dir, 400);
    const common = ['train', '--data', data, '--steps', '20', ...SMALL_SETS];
    const standalone = runCli([...common, '--run-dir', join(dir, 'standalone'), ...torchFlags(2)], 300_000);
    assert.equal(standalone.code, 0, standalone.stderr);
    const run = join(dir, 'two-nodes');
    const rdzv = {
      STEELSCOPE_NNODES: '2',
      STEELSCOPE_RDZV_ENDPOINT: `127.0.0.1:${await freePort()}`,
      STEELSCOPE_RDZV_ID: 'test-job-0',
    };
    // Node 1 first: it waits for node 0 to prepare the shared folder before joining the rendezvous.
    const node1 = cli([...common, '--run-dir', run, ...torchFlags(1)], { ...rdzv, STEELSCOPE_NODE_RANK: '1' });
    const node0 = cli([...common, '--run-dir', run, ...torchFlags(1)], { ...rdzv, STEELSCOPE_NODE_RANK: '0' });
    const [a, b] = await Promise.all([node0.exited, node1.exited]);
    assert.equal(a.code, 0, `node 0: ${a.stderr}`);
    assert.equal(b.code, 0, `node 1: ${b.stderr}`);
    const info = runJson(run);
    assert.equal(info.status, 'finished');
    assert.equal(info.world_size, 2);
    const expected = trainLosses(join(dir, 'standalone'));
    const actual = trainLosses(run);
    assert.equal(actual.size, 20, 'every step once');
    let worst = 0;
    for (const [step, loss] of expected) {
      const rel = Math.abs((actual.get(step) ?? NaN) - loss) / Math.abs(loss);
      worst = Math.max(worst, rel);
      assert.ok(rel <= 1e-4, `step ${step}: two nodes ${actual.get(step)} vs standalone ${loss}`);
    }
    t.diagnostic(`largest relative loss difference, 2 nodes vs standalone: ${worst.toExponential(2)}`);
  },
);

/** `signal` to each pid; one that ended since it was listed is no error. */
function signalAll(pids: number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
}

/**
 * Starts a slow 2-process torch run and sends `signal` to every process of it once it trains; with
 * `then`, once the supervisor and both ranks have taken the first, `then` to every process left.
 */
async function signalEveryProcess(name: string, signal: NodeJS.Signals, then?: NodeJS.Signals) {
  const dir = scratch(name);
  const data = poetrySubset(dir, 400);
  const run = join(dir, 'run');
  const slow = ['--set', 'n_embd=128', '--set', 'seq_len=128', '--set', 'checkpoint_every=1000'];
  const args = ['train', '--data', data, '--steps', '100000', ...SMALL_SETS, ...slow, '--run-dir', run];
  const { exited, stderr: stderrSoFar } = cli([...args, ...torchFlags(2)]);
  const deadline = Date.now() + 180_000;
  while (!trainLosses(run).has(1)) {
    if (Date.now() > deadline) throw new Error('no step 1 within 180 s');
    await sleep(20);
  }
  // Supervisor, torchrun's agent and both ranks, as Slurm signals every process of a job step.
  const pids = processesMentioning(run);
  assert.ok(pids.length >= 4, `the supervisor, torchrun and 2 ranks: ${pids.length} processes`);
  signalAll(pids, signal);
  if (then) {
    // The supervisor's line and each rank's (their stderr passes through it) say the first was taken.
    const taken = () => stderrSoFar().split(`${signal}: saving a checkpoint`).length - 1;
    await until(`the supervisor and both ranks taking ${signal}`, () => taken() >= 3, 120_000);
    signalAll(processesMentioning(run), then);
  }
  const { code, stderr } = await exited;
  const info = runJson(run);
  const checkpoint = join(run, 'checkpoints', `step-${String(info.step).padStart(8, '0')}`, 'DONE');
  return { code, stderr, info, checkpointed: existsSync(checkpoint) };
}

test(
  'SIGUSR1 to every process of a 2-process torch run, then the TERM srun passes on: a checkpoint, stopped, exit 75',
  { skip: TORCH_SKIP },
  async () => {
    // The TERM is no second signal for any of them, and one reaching a rank as it exits must not
    // kill it (Python's finalization restores the default actions: the rank ignores them by then).
    const { code, stderr, info, checkpointed } = await signalEveryProcess('torch-usr1', 'SIGUSR1', 'SIGTERM');
    assert.equal(code, REQUEUE_EXIT_CODE, stderr);
    assert.equal(info.status, 'stopped');
    assert.ok(checkpointed, `a complete checkpoint at the last step ${info.step}`);
  },
);

test(
  'SIGTERM to every process (Stop and requeue on Slurm: scancel --signal=TERM --full): a checkpoint, status stopped',
  { skip: TORCH_SKIP },
  async () => {
    const { code, stderr, info, checkpointed } = await signalEveryProcess('torch-term-all', 'SIGTERM');
    assert.equal(code, 0, stderr);
    assert.equal(info.status, 'stopped', stderr);
    assert.ok(checkpointed, `a complete checkpoint at the last step ${info.step}`);
  },
);
