// Runs on a Slurm cluster through its login node, against a REAL one-node cluster (test/slurm.ts:
// slurmctld, slurmd and munged on 127.0.0.1, a `debug` partition with 2 CPUs) reached through the
// REAL test sshd (test/sshd.ts): submission with sbatch, the queue states a user sees (PENDING with
// its reason, RUNNING, COMPLETED), losses arriving, the run's own status. Skipped with a message
// where Slurm is missing; a failure under CI=true.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SshConnection, type SshPrompts } from '../../src/host/ssh/connection';
import { RemoteTarget } from '../../src/host/ssh/remoteTarget';
import { SlurmLauncher } from '../../src/host/slurm/launcher';
import { slurmPartitions } from '../../src/host/slurm/cluster';
import { parseScontrolJob, type SlurmJob } from '../../src/host/slurm/jobState';
import type { SlurmJobOptions } from '../../src/host/slurm/batchScript';
import {
  poetrySubset,
  readMetrics,
  ROOT,
  runCli,
  scratch,
  SMALL_SETS,
  TEST_ENV,
  trainLosses,
  readRunInfo,
  until as untilValue,
} from '../helpers';
import { torchFlags, torchPython, TORCH_SKIP } from '../torch';
import { sshdSkipReason, TestSshd } from '../sshd';
import { slurmSkipReason, TestSlurm } from '../slurm';

const SETS = SMALL_SETS.filter((s) => s !== '--set');
const skip = sshdSkipReason() ?? slurmSkipReason();
const DEBUG: SlurmJobOptions = { partition: 'debug', nodes: 1, gpusPerNode: 0, timeLimit: '10' };

const prompts: SshPrompts = {
  password: async () => undefined,
  passphrase: async () => undefined,
  confirmHostKey: async () => true,
  forget: () => undefined,
};

/** Polls every 100 ms, for up to 120_000 ms by default (see helpers.until). */
const until = <T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 120_000,
): Promise<T> => untilValue(what, probe, timeoutMs, 100);

const readInfo = readRunInfo;

describe('Slurm login node (real one-node cluster through the real sshd)', { skip }, () => {
  let slurm: TestSlurm;
  let sshd: TestSshd;
  let root: string;
  let data: string;
  let target: RemoteTarget;
  let launcher: SlurmLauncher;

  /** The job as this machine's scontrol sees it (the same cluster). */
  const jobHere = (jobId: string): SlurmJob | undefined => {
    try {
      return parseScontrolJob(slurm.run('scontrol', ['show', 'job', '-o', jobId]));
    } catch {
      return undefined;
    }
  };
  before(async () => {
    slurm = await TestSlurm.start();
    sshd = await TestSshd.start({ extraConfig: slurm.sshdConfig });
    root = scratch('slurm-runs');
    mkdirSync(join(root, 'data'));
    data = poetrySubset(join(root, 'data'), 300);
    target = new RemoteTarget({
      alias: 'test-slurm',
      connect: () =>
        SshConnection.connect({ host: sshd.hostConfig(), prompts, knownHostsFile: sshd.knownHosts, agent: '' }),
      distDir: join(ROOT, 'dist'),
      version: 'test',
      remoteRoot: join(root, 'home', '.steelscope'),
      runsRoot: join(root, 'shared', 'runs'),
      env: { STEELSCOPE_CACHE: TEST_ENV.STEELSCOPE_CACHE ?? join(root, 'cache') },
      startTimeoutMs: 120_000,
      launcher: (host, cli) => (launcher = new SlurmLauncher(host, cli, { stopGraceMs: 60_000 })),
    });
  });

  after(async () => {
    slurm?.stop();
    target?.disconnect();
    await sshd?.stop();
  });

  test('the host is a Slurm login node: sbatch found, partitions from sinfo', async () => {
    const partitions = await slurmPartitions(target.host);
    assert.deepEqual(
      partitions?.map((p) => [p.name, p.isDefault, p.up, p.nodes, p.gpusPerNode]),
      [['debug', true, true, 1, 0]],
    );
  });

  test('a tiny run: PENDING (node drained, with its reason) → RUNNING → losses → COMPLETED, status finished', async () => {
    const node = slurm.run('sinfo', ['-h', '-o', '%n']).trim();
    // A drained node keeps the job pending, whatever the machine's speed: the state is seen for sure.
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
    const starting = target.start({ name: 'slurm tiny', preset: 'tiny', data, steps: 12, sets: SETS, slurm: DEBUG });
    let failure: unknown;
    starting.catch((err) => (failure = err));
    const jobId = await until('the job in the queue', () => {
      if (failure !== undefined) throw failure;
      const rows = slurm
        .run('squeue', ['-h', '-o', '%i %j'])
        .split('\n')
        .map((line) => line.split(' '));
      return rows.find(([, name]) => name?.startsWith('slurm-tiny-'))?.[0];
    });
    const pending = await until('PENDING with a reason', () => {
      const job = jobHere(jobId);
      return job?.state === 'PENDING' && job.reason ? job : undefined;
    });
    assert.match(
      pending.reason,
      /Nodes_required|ReqNodeNotAvail|Resources|Unavailable/,
      `the reason: ${pending.reason}`,
    );
    assert.equal((await launcher.job(jobId))?.state, 'PENDING', 'the login node sees it pending too');
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);

    const runDir = await starting;
    assert.equal(readInfo(runDir).slurm_job_id, jobId, 'run.json names its job');
    await until('RUNNING or done', () => ['RUNNING', 'COMPLETING', 'COMPLETED'].includes(jobHere(jobId)?.state ?? ''));
    await until('losses', () => readMetrics(runDir).some((m) => typeof m.loss === 'number'));
    await until('COMPLETED', () => jobHere(jobId)?.state === 'COMPLETED');
    const info = readInfo(runDir);
    assert.equal(info.status, 'finished');
    assert.equal(info.step, 12);
    const steps = readMetrics(runDir)
      .filter((m) => m.kind === undefined || m.kind === 'train')
      .map((m) => m.step);
    assert.deepEqual(
      steps,
      Array.from({ length: 12 }, (_, i) => i),
      'every step once',
    );
    assert.equal(await target.isAlive(info), false, 'a completed job is not alive');
  });

  test('Stop: the trainer saves a checkpoint, status stopped, the job CANCELLED', async () => {
    const runDir = await target.start({
      name: 'slurm stop',
      preset: 'tiny',
      data,
      steps: 100_000,
      sets: SETS,
      slurm: DEBUG,
    });
    const jobId = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names no job');
    await until('losses', () => readMetrics(runDir).some((m) => typeof m.loss === 'number'));
    assert.equal(await target.isAlive(readInfo(runDir)), true, 'a running job is alive');
    await target.stop(runDir);
    await until('CANCELLED', () => jobHere(jobId)?.state === 'CANCELLED');
    const info = readInfo(runDir);
    assert.equal(info.status, 'stopped');
    const checkpoint = `step-${String(info.step).padStart(8, '0')}`;
    assert.ok(
      existsSync(join(runDir, 'checkpoints', checkpoint, 'DONE')),
      `a complete checkpoint at the last step (${checkpoint})`,
    );
    assert.equal(await target.isAlive(info), false);
  });

  test('a job that cannot be scheduled (more nodes than the partition has): PENDING with its reason, then cancelled', async () => {
    const tooBig = { ...DEBUG, nodes: 2 };
    const err = await target
      .start({ name: 'slurm too big', preset: 'tiny', data, steps: 5, sets: SETS, slurm: tooBig })
      .then(
        () => assert.fail('start() should refuse a job that can never start'),
        (e: Error) => e,
      );
    assert.match(err.message, /PENDING \(PartitionNodeLimit\) and cannot start as asked; cancelled/);
    const id = /Slurm job (\d+)/.exec(err.message)?.[1] ?? assert.fail('the message names the job');
    await until('CANCELLED', () => jobHere(id)?.state === 'CANCELLED');
  });

  test('a job with a 1-minute limit checkpoints on USR1, requeues itself and resumes from it: every step once', async () => {
    // The time limit's signal comes a minute ahead: at once, so the run is cut short however fast this machine is.
    const short = { ...DEBUG, timeLimit: '1', signalLeadS: 60 };
    const steps = 100_000;
    const runDir = await target.start({
      name: 'slurm requeue',
      preset: 'tiny',
      data,
      steps,
      sets: [...SETS, 'checkpoint_every=1000000'],
      slurm: short,
    });
    const jobId = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names no job');
    await until(
      'requeued and resumed',
      () => (jobHere(jobId)?.restarts ?? 0) >= 1 && readInfo(runDir).resumes.length >= 1,
      300_000,
    );
    const resumedAt = readInfo(runDir).resumes[0].step;
    assert.ok(resumedAt > 0, 'resumed from the checkpoint USR1 asked for');
    await target.stop(runDir);
    await until(
      'stopped',
      () => readInfo(runDir).status === 'stopped' && jobHere(jobId)?.state === 'CANCELLED',
      300_000,
    );
    const trainSteps = readMetrics(runDir)
      .filter((m) => m.kind === undefined || m.kind === 'train')
      .map((m) => m.step);
    assert.deepEqual(
      trainSteps,
      Array.from({ length: trainSteps.length }, (_, i) => i),
      'every step once, none lost',
    );
    assert.ok(trainSteps.length > resumedAt + 1, 'steps after the resume');
  });

  test(
    'a 2-task job (torchrun, 2 CPU processes, gloo) trains what a 1-process run with the same global batch trains, within 1e-4',
    { skip: TORCH_SKIP },
    async () => {
      const engine = { name: 'torch' as const, nproc: 2, python: torchPython() };
      const runDir = await target.start({
        name: 'slurm ddp',
        preset: 'tiny',
        data,
        steps: 20,
        sets: SETS,
        engine,
        slurm: DEBUG,
      });
      const jobId = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names no job');
      const one = runCli(
        [
          'train',
          '--preset',
          'tiny',
          '--data',
          data,
          '--steps',
          '20',
          ...SMALL_SETS,
          '--run-dir',
          join(root, 'one'),
          ...torchFlags(1),
        ],
        300_000,
      );
      assert.equal(one.code, 0, one.stderr);
      await until('COMPLETED', () => jobHere(jobId)?.state === 'COMPLETED', 300_000);
      const info = readInfo(runDir);
      assert.equal(info.status, 'finished');
      assert.equal(info.world_size, 2);
      const a = trainLosses(join(root, 'one'));
      const b = trainLosses(runDir);
      assert.equal(a.size, 20);
      for (const [step, loss] of a) {
        const rel = Math.abs((b.get(step) ?? NaN) - loss) / Math.abs(loss);
        assert.ok(rel <= 1e-4, `step ${step}: the 2-task job ${b.get(step)} vs 1 process ${loss}`);
      }
    },
  );
});
