// Runs on a Slurm cluster through its login node, against a REAL one-node cluster (test/slurm.ts:
// slurmctld, slurmd and munged on 127.0.0.1, a `debug` partition with 2 CPUs) reached through the
// REAL test sshd (test/sshd.ts): submission with sbatch, the queue states a user sees (PENDING with
// its reason, RUNNING, COMPLETED), losses arriving, the run's own status. Skipped with a message
// where Slurm is missing; a failure under CI=true.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { observeRunInfo, type ObservedRun } from '../../src/shared/run';
import { dirname, join } from 'node:path';
import type { RemoteTarget } from '../../src/host/ssh/remoteTarget';
import type { RemoteCli } from '../../src/host/ssh/deploy';
import { shCommand, shQuote } from '../../src/host/ssh/quote';
import { SlurmJobWatch } from '../../src/host/slurm/jobWatch';
import { AlertWatch } from '../../src/host/alerts/watch';
import type { Alert } from '../../src/host/alerts/alerts';
import { SlurmLauncher } from '../../src/host/slurm/launcher';
import { slurmPartitions } from '../../src/host/slurm/cluster';
import { parseScontrolJob, viewStateOfJob, type SlurmJob } from '../../src/host/slurm/jobState';
import { RunStore } from '../../src/host/runs/store';
import type { SlurmJobOptions } from '../../src/host/slurm/batchScript';
import { poetrySubset, readMetrics, runCli, scratch, SMALL_SETS, trainLosses, until as untilValue } from '../helpers';
import { torchFlags, torchPython, TORCH_SKIP } from '../torch';
import { sshdSkipReason, sshdTarget, TestSshd } from '../sshd';
import { slurmSkipReason, TestSlurm } from '../slurm';

const SETS = SMALL_SETS.filter((s) => s !== '--set');
const skip = sshdSkipReason() ?? slurmSkipReason();
const DEBUG: SlurmJobOptions = { partition: 'debug', nodes: 1, gpusPerNode: 0, timeLimit: '10' };

/** Polls every 100 ms, for up to 120_000 ms by default (see helpers.until). */
const until = <T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 120_000,
): Promise<T> => untilValue(what, probe, timeoutMs, 100);

/** The train steps in metrics.jsonl, in file order. */
const trainSteps = (runDir: string): number[] =>
  readMetrics(runDir)
    .filter((m) => m.kind === undefined || m.kind === 'train')
    .map((m) => m.step);

/** run.json as the Runs view reads it: a queued run's pending one included. */
function readInfo(runDir: string): ObservedRun {
  const observed = observeRunInfo(JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')));
  assert.ok(observed.ok, observed.ok ? '' : observed.error);
  return observed.run;
}

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
  /**
   * Runs `body` with the node drained: a job requeued meanwhile stays PENDING until it returns, so
   * what the run shows while queued again is seen for sure, however slow this machine is.
   */
  const drained = async <T>(body: () => Promise<T>): Promise<T> => {
    const node = slurm.run('sinfo', ['-h', '-o', '%n']).trim();
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
    try {
      return await body();
    } finally {
      slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
    }
  };
  /**
   * The CLI the batch scripts run, except that `steelscope slurm-requeue` waits while the file
   * `requeueHeld` exists (and says so by creating `requeueWaiting`): the moment between the
   * trainer's `stopped` and the requeue's `pending` lasts until the test has looked, however fast or
   * slow this machine is. Tests that do not create `requeueHeld` see the plain CLI.
   */
  const requeueHeld = () => join(root, 'requeue-held');
  const requeueWaiting = () => join(root, 'requeue-waiting');
  const heldRequeueCli = (cli: RemoteCli): Pick<RemoteCli, 'command'> => ({
    command: async (args) => {
      const wrapper = join(root, 'held-requeue-cli.sh');
      const [held, waiting] = [shQuote(requeueHeld()), shQuote(requeueWaiting())];
      writeFileSync(
        wrapper,
        `#!/bin/sh\nif [ "$1" = slurm-requeue ] && [ -e ${held} ]; then\n  : >${waiting}\n` +
          `  while [ -e ${held} ]; do sleep 0.1; done\nfi\nexec ${shCommand(await cli.command(args))} "$@"\n`,
        { mode: 0o755 },
      );
      return [wrapper];
    },
  });
  /** Requeued and queued again: run.json says pending (not stopped), naming the same job. */
  const pendingWhileRequeued = (runDir: string, jobId: string) =>
    until('run.json pending while the requeued job waits', () => {
      const job = jobHere(jobId);
      const info = readInfo(runDir);
      return job && job.restarts >= 1 && job.state === 'PENDING' && info.status === 'pending' ? info : undefined;
    }).then((info) => assert.equal(info.slurm_job_id, jobId, 'the same job'));
  /**
   * After a requeue of a run that had trained at least 3 steps: the requeued job resumes it from
   * the checkpoint saved on TERM and trains on; then Stop, and metrics.jsonl holds every step once.
   * Returns run.json as resumed.
   */
  const resumedEveryStepOnce = async (runDir: string, jobId: string): Promise<ObservedRun> => {
    await until('resumed', () => (readInfo(runDir).resumes ?? []).length >= 1, 300_000);
    const info = readInfo(runDir);
    const resumedAt = info.resumes?.[0]?.step ?? assert.fail('a resume recorded');
    assert.ok(resumedAt >= 3, `resumed from the checkpoint saved on TERM (step ${resumedAt})`);
    await until('steps after the resume', () => trainSteps(runDir).length > resumedAt + 2);
    await target.stop(runDir);
    await until('stopped', () => readInfo(runDir).status === 'stopped' && jobHere(jobId)?.state === 'CANCELLED');
    const steps = trainSteps(runDir);
    assert.deepEqual(
      steps,
      Array.from({ length: steps.length }, (_, i) => i),
      'every step once, none lost',
    );
    return info;
  };
  before(async () => {
    slurm = await TestSlurm.start();
    sshd = await TestSshd.start({ extraConfig: slurm.sshdConfig });
    root = scratch('slurm-runs');
    mkdirSync(join(root, 'data'));
    data = poetrySubset(join(root, 'data'), 300);
    target = sshdTarget(sshd, root, {
      alias: 'test-slurm',
      runsRoot: join(root, 'shared', 'runs'),
      startTimeoutMs: 120_000,
      launcher: (host, cli) => (launcher = new SlurmLauncher(host, heldRequeueCli(cli), { stopGraceMs: 60_000 })),
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
    const idle = partitions?.[0]?.idleNodes;
    assert.ok(idle === 0 || idle === 1, `idle nodes from sinfo's %F: ${idle}`);
  });

  test('a tiny run: PENDING (node drained, with its reason) → RUNNING → losses → COMPLETED, status finished', async () => {
    const node = slurm.run('sinfo', ['-h', '-o', '%n']).trim();
    // A drained node keeps the job pending, whatever the machine's speed: the state is seen for sure.
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
    // Start returns at once, the job queued: the run folder holds run.json (pending, its job) and the script.
    const runDir = await target.start({
      name: 'slurm tiny',
      preset: 'tiny',
      data,
      steps: 12,
      sets: SETS,
      slurm: DEBUG,
    });
    const queued = readInfo(runDir);
    assert.equal(queued.status, 'pending');
    const jobId = queued.slurm_job_id ?? assert.fail('run.json names its job');
    assert.equal(queued.name, 'slurm tiny');
    assert.ok(
      readdirSync(runDir).some((f) => /^slurm-job-\d+\.sh$/.test(f)),
      `the batch script in the run folder: ${readdirSync(runDir).join(', ')}`,
    );
    assert.deepEqual(
      readdirSync(dirname(runDir)).filter((f) => f.startsWith('.')),
      [],
      'nothing beside the run folder',
    );
    const pending = await until('PENDING with a reason', async () => {
      const job = await launcher.job(jobId);
      return job?.state === 'PENDING' && job.reason && job.reason !== 'JobHeldUser' ? job : undefined;
    });
    assert.match(
      pending.reason,
      /Nodes_required|ReqNodeNotAvail|Resources|Unavailable/,
      `the reason: ${pending.reason}`,
    );
    assert.equal(readInfo(runDir).status, 'pending', 'still pending while the job waits');
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);

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

  test('Resume submits a new job from the newest checkpoint; `steelscope follow` on the login node shows it pending, then the steps continue, none repeated', async () => {
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    const runDir = await target.start({
      name: 'slurm resume',
      preset: 'tiny',
      data,
      steps: 6,
      sets: SETS,
      slurm: DEBUG,
    });
    const firstJob = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names no job');
    await until('COMPLETED', () => jobHere(firstJob)?.state === 'COMPLETED');
    assert.equal(readInfo(runDir).status, 'finished');
    const follower = target.createFollower(runDir);
    const key = store.addRemoteRun(target, runDir, follower);
    try {
      const followed = () => {
        const table = store.get(key)?.tables.get('train');
        return table ? [...table.step.subarray(0, table.length)] : [];
      };
      await until('6 steps followed', () => followed().length === 6);
      // A drained node keeps the new job queued: its pending state is seen for sure.
      const node = slurm.run('sinfo', ['-h', '-o', '%n']).trim();
      slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
      try {
        await target.resume(runDir, { steps: 12, slurm: DEBUG });
        const queued = readInfo(runDir);
        assert.equal(queued.status, 'pending');
        assert.notEqual(queued.slurm_job_id, firstJob, 'a new job');
        await until('the follower shows it pending', () => store.get(key)?.summary.status === 'pending');
      } finally {
        slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
      }
      const secondJob = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names the new job');
      await until('COMPLETED', () => jobHere(secondJob)?.state === 'COMPLETED', 300_000);
      const info = readInfo(runDir);
      assert.equal(info.status, 'finished');
      assert.equal(info.step, 12);
      assert.equal(info.resumes?.[0]?.step, 6, 'resumed from the newest checkpoint (step 6)');
      const expected = Array.from({ length: 12 }, (_, i) => i);
      assert.deepEqual(trainSteps(runDir), expected, 'every step once in metrics.jsonl');
      await until('12 steps followed', () => followed().length === 12);
      assert.deepEqual(followed(), expected, 'the follower saw each step once');
      await until('finished in the store', () => store.get(key)?.summary.status === 'finished');
    } finally {
      store.dispose();
    }
  });

  test('a job that cannot be scheduled (more nodes than the partition has): a pending run with its reason, cancelled by Stop', async () => {
    const tooBig = { ...DEBUG, nodes: 2 };
    // Several nodes run the torch engine; this job never starts, so no torch is needed here.
    const engine = { name: 'torch' as const, nproc: 1 };
    const runDir = await target.start({
      name: 'slurm too big',
      preset: 'tiny',
      data,
      steps: 5,
      sets: SETS,
      engine,
      slurm: tooBig,
    });
    const id = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names its job');
    const job = await until('PENDING (PartitionNodeLimit)', async () => {
      const found = await launcher.job(id);
      return found?.reason === 'PartitionNodeLimit' ? found : undefined;
    });
    assert.equal(job.state, 'PENDING');
    assert.equal(readInfo(runDir).status, 'pending', 'the run is listed as pending');
    assert.equal(await target.isAlive(readInfo(runDir)), true, 'a queued job holds its run');
    await target.stop(runDir);
    await until('CANCELLED', () => jobHere(id)?.state === 'CANCELLED');
    const info = readInfo(runDir);
    assert.equal(info.status, 'stopped', 'cancelled in the queue: stopped');
    assert.equal(info.exit?.reason, 'cancelled in the queue');
  });

  test('a job with a 1-minute limit checkpoints on USR1, requeues itself and resumes from it: every step once; the Runs view never shows it stopped, no alert', async () => {
    // The time limit's signal comes a minute ahead: at once, so the run is cut short however fast this machine is.
    const short = { ...DEBUG, timeLimit: '1', signalLeadS: 60 };
    const steps = 100_000;
    // What the Runs view shows, from its own store: run.json followed, squeue polled every 0.5 s.
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    const summaries = () => [...store.runs.values()].map((r) => r.summary);
    const jobs = new SlurmJobWatch(
      target.host,
      { runs: summaries, setJob: (k, j) => store.setJob(k, j) },
      () => true,
      500,
    );
    const alerts: Alert[] = [];
    const alertWatch = new AlertWatch(store, {
      rules: () => [],
      level: () => 'all',
      show: (_, a) => alerts.push(...a),
    });
    /** Each status the view showed, with the run.json status and job state it came from. */
    const shown: string[] = [];
    store.onDidChange((change) => {
      const now = store.get(change.key)?.summary;
      const line = `${now?.status} (run.json ${now?.info?.status}, job ${now?.job?.state})`;
      if (now && shown.at(-1) !== line) shown.push(line);
    });
    writeFileSync(requeueHeld(), '');
    try {
      const runDir = await target.start({
        name: 'slurm requeue',
        preset: 'tiny',
        data,
        steps,
        sets: [...SETS, 'checkpoint_every=1000000'],
        slurm: short,
      });
      const key = store.addRemoteRun(target, runDir, target.createFollower(runDir));
      const summary = () => store.get(key)?.summary;
      jobs.start();
      const jobId = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names no job');
      // The node drained once the job runs: its requeued self waits, the run pending, not stopped.
      await until('RUNNING', () => jobHere(jobId)?.state === 'RUNNING' || (jobHere(jobId)?.restarts ?? 0) >= 1);
      await drained(async () => {
        // The trainer checkpointed and wrote stopped; the script's slurm-requeue waits for us.
        await until('the requeue held', () => existsSync(requeueWaiting()));
        assert.equal(readInfo(runDir).status, 'stopped', 'run.json: the trainer stopped');
        await until('the view has read it', () => summary()?.info?.status === 'stopped');
        await jobs.poll(true);
        const held = await until('the job as squeue has it now', () => {
          const now = summary();
          return now?.info?.status === 'stopped' && now.job?.state !== 'PENDING' ? now : undefined;
        });
        assert.equal(held.status, 'stopping', `its job ${held.job?.state} lives on: stopping, not stopped`);
        rmSync(requeueHeld());
        await pendingWhileRequeued(runDir, jobId);
      });
      await until(
        'requeued and resumed',
        () => (jobHere(jobId)?.restarts ?? 0) >= 1 && (readInfo(runDir).resumes ?? []).length >= 1,
        300_000,
      );
      await until('the view shows it running again', () => summary()?.status === 'running');
      const FINAL = /^(stopped|finished|failed|stale) /;
      assert.deepEqual(
        shown.filter((line) => FINAL.test(line)),
        [],
        `no final state while requeued: ${shown.join(' → ')}`,
      );
      assert.ok(
        shown.some((line) => line.startsWith('pending ')),
        `shown pending: ${shown.join(' → ')}`,
      );
      assert.deepEqual(alerts, [], 'no notification for a requeue');
      const resumedAt = readInfo(runDir).resumes?.[0]?.step ?? assert.fail('a resume recorded');
      assert.ok(resumedAt > 0, 'resumed from the checkpoint USR1 asked for');
      await target.stop(runDir);
      await until(
        'stopped',
        () => readInfo(runDir).status === 'stopped' && jobHere(jobId)?.state === 'CANCELLED',
        300_000,
      );
      await until('the view shows it stopped once its job is CANCELLED', () => summary()?.status === 'stopped');
      const trainSteps = readMetrics(runDir)
        .filter((m) => m.kind === undefined || m.kind === 'train')
        .map((m) => m.step);
      assert.deepEqual(
        trainSteps,
        Array.from({ length: trainSteps.length }, (_, i) => i),
        'every step once, none lost',
      );
      assert.ok(trainSteps.length > resumedAt + 1, 'steps after the resume');
    } finally {
      rmSync(requeueHeld(), { force: true });
      rmSync(requeueWaiting(), { force: true });
      jobs.dispose();
      alertWatch.dispose();
      store.dispose();
    }
  });

  test('a job Slurm requeues as a preemption does (scontrol requeue): it checkpoints on TERM and resumes from it, every step once', async () => {
    const runDir = await target.start({
      name: 'slurm preempted',
      preset: 'tiny',
      data,
      steps: 100_000,
      sets: [...SETS, 'checkpoint_every=1000000'],
      slurm: DEBUG,
    });
    const jobId = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names no job');
    await until('a few steps', () => trainSteps(runDir).length >= 3);
    await drained(async () => {
      slurm.run('scontrol', ['requeue', jobId]);
      const requeued = await until('requeued', () => {
        const job = jobHere(jobId);
        return job && job.restarts >= 1 ? job : undefined;
      });
      assert.notEqual(viewStateOfJob(requeued.state), 'failed', `a requeued job is no failure: ${requeued.state}`);
      await pendingWhileRequeued(runDir, jobId);
    });
    await resumedEveryStepOnce(runDir, jobId);
  });

  test('a fine-tuning job (sft) Slurm requeues: it checkpoints on TERM and resumes the fine-tuning, every step once', async () => {
    const base = join(root, 'sft-base');
    const trained = runCli(['train', '--data', data, '--run-dir', base, '--steps', '1', ...SMALL_SETS]);
    assert.equal(trained.code, 0, trained.stderr);
    const runDir = await target.start({
      name: 'slurm sft preempted',
      preset: 'fine-tune',
      from: join(base, 'checkpoints', 'step-00000001'),
      data: 'poetry-sft',
      steps: 100_000,
      sets: ['sample_every=0', 'checkpoint_every=1000000'],
      slurm: DEBUG,
    });
    const jobId = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names no job');
    await until('a few steps', () => trainSteps(runDir).length >= 3);
    await drained(async () => {
      slurm.run('scontrol', ['requeue', jobId]);
      await pendingWhileRequeued(runDir, jobId);
    });
    const resumed = await resumedEveryStepOnce(runDir, jobId);
    assert.equal(resumed.template, 'chatml', 'still the fine-tuning run');
  });

  test('a bad --set refused by the trainer CLI: the queued run becomes failed with the line it prints (exit 2)', async () => {
    const runDir = await target.start({
      name: 'slurm bad set',
      preset: 'tiny',
      data,
      steps: 5,
      sets: [...SETS, 'no_such_key=1'],
      slurm: DEBUG,
    });
    const jobId = readInfo(runDir).slurm_job_id ?? assert.fail('run.json names its job');
    const info = await until('failed', () => {
      const read = readInfo(runDir);
      return read.status === 'failed' ? read : undefined;
    });
    assert.equal(info.slurm_job_id, jobId);
    assert.equal(info.exit?.code, 2);
    const reason = info.exit?.reason ?? '';
    assert.match(reason, /no_such_key/, 'the reason names the bad setting');
    const log = readFileSync(join(runDir, 'trainer.log'), 'utf8');
    assert.ok(log.includes(`steelscope: ${reason}`), `the line the CLI printed: ${log}`);
    await until('the job ended', () => ['FAILED', 'COMPLETED'].includes(jobHere(jobId)?.state ?? ''));
    assert.equal(jobHere(jobId)?.state, 'FAILED', 'exit 2: the job FAILED');
    assert.equal(await target.isAlive(readInfo(runDir)), false, 'not listed as a live or stale queued run');
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
