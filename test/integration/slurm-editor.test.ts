// What the editor makes of a Slurm login node, against the REAL one-node test cluster (test/slurm.ts)
// through the REAL test sshd: the host is probed as a login node (partitions, no accounting); a start
// returns as soon as the job is queued, and the Runs view's store shows it pending with Slurm's
// reason, then running with losses, then stopped, and resumed as a new job (pending, running); a job
// still pending is cancelled by Stop (and its run is not deleted until then).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RemoteTarget } from '../../src/host/ssh/remoteTarget';
import { RunStore } from '../../src/host/runs/store';
import type { SlurmJobOptions } from '../../src/host/slurm/batchScript';
import { poetrySubset, scratch, SMALL_SETS, until } from '../helpers';
import { sshdSkipReason, sshdTarget, TestSshd } from '../sshd';
import { slurmSkipReason, TestSlurm } from '../slurm';

const SETS = SMALL_SETS.filter((s) => s !== '--set');
const skip = sshdSkipReason() ?? slurmSkipReason();
const DEBUG: SlurmJobOptions = { partition: 'debug', nodes: 1, gpusPerNode: 0, timeLimit: '10' };
const wait = <T>(what: string, probe: () => T | undefined | false) => until(what, probe, 180_000, 100);

describe('the editor on a Slurm login node (real one-node cluster through the real sshd)', { skip }, () => {
  let slurm: TestSlurm;
  let sshd: TestSshd;
  let root: string;
  let data: string;
  let target: RemoteTarget;
  let store: RunStore;
  let node: string;

  before(async () => {
    slurm = await TestSlurm.start();
    sshd = await TestSshd.start({ extraConfig: slurm.sshdConfig });
    root = scratch('slurm-editor');
    mkdirSync(join(root, 'data'));
    data = poetrySubset(join(root, 'data'), 300);
    node = slurm.run('sinfo', ['-h', '-o', '%n']).trim();
    // No launcher given: the one the extension uses (sbatch for a start that asks for a job).
    target = sshdTarget(sshd, root, {
      alias: 'test-login',
      runsRoot: () => join(root, 'shared', 'runs'),
    });
    store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    target.watchJobs({
      runs: () => [...store.runs.values()].map((r) => r.summary),
      setJob: (key, job) => store.setJob(key, job),
    });
  });

  after(async () => {
    store?.dispose();
    slurm?.stop();
    target?.disconnect();
    await sshd?.stop();
  });

  /** A run started as the editor starts one: it returns once queued, and the store follows its folder. */
  const submit = async (name: string, steps: number) => {
    const dir = await target.start({
      name,
      preset: 'tiny',
      data,
      steps,
      sets: SETS,
      slurm: DEBUG,
      waitUntil: 'submitted',
    });
    return { dir, key: store.addRemoteRun(target, dir, target.createFollower(dir)) };
  };
  const summary = (key: string) => store.get(key)?.summary;

  test('probed as a login node: the debug partition (default, CPU only), no accounts without slurmdbd', async () => {
    const cluster = await target.slurmCluster();
    assert.deepEqual(
      cluster?.partitions.map((p) => [p.name, p.isDefault, p.gpusPerNode]),
      [['debug', true, 0]],
    );
    assert.deepEqual(cluster?.accounts, []);
  });

  test("Refresh asks the cluster again: a drained node is not idle, a resumed one is (the Runs view's rows)", async () => {
    const idle = async () => {
      const state = await target.slurm.refresh();
      return state.kind === 'slurm' ? state.cluster.partitions.find((p) => p.name === 'debug')?.idleNodes : undefined;
    };
    const changes: number[] = [];
    const subscription = target.slurm.onChange((s) => changes.push(s.kind === 'slurm' ? 1 : 0));
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-refresh']);
    try {
      assert.equal(await idle(), 0, 'a drained node is not idle');
    } finally {
      slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
    }
    // No job runs here now: the node is idle once slurmctld has taken the resume.
    await wait('the resumed node idle', async () => (await idle()) === 1);
    assert.ok(changes.length >= 2, 'each answer is told (the tree redraws on it)');
    subscription.dispose();
  });

  test('pending (with its reason) → running with losses → Stop → stopped → Resume: a new job, pending → running', async () => {
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
    const { dir, key } = await submit('queued run', 100_000);
    const queued = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string; name: string };
    assert.equal(queued.status, 'pending', 'start returned before the trainer began: run.json says pending');
    // Pending from run.json (once followed); Slurm's reason comes with the job watch's next squeue.
    const pending = await wait('pending in the store, with its reason', () => {
      const now = summary(key);
      return now?.status === 'pending' && now.job?.reason && now.info ? now : undefined;
    });
    assert.ok(pending.job?.reason, `a reason is shown (${pending.job?.reason})`);
    assert.equal(pending.name, 'queued run', 'run.json names it from the submission on');
    assert.ok((await target.listRunDirs()).includes(dir), 'a queued run is listed (after a reload too)');

    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
    await wait('running', () => summary(key)?.status === 'running');
    await wait('losses', () => (store.get(key)?.tables.get('train')?.length ?? 0) >= 2);
    assert.equal(summary(key)?.job?.state, 'RUNNING');

    await target.stop(dir);
    await wait('stopped', () => summary(key)?.status === 'stopped');
    await wait('the job CANCELLED', () => summary(key)?.job?.state === 'CANCELLED');
    assert.ok(readdirSync(join(dir, 'checkpoints')).length >= 1, 'a checkpoint was saved');

    // Resume submits a new job: the run waits in it (pending), then its trainer takes the run over.
    const stoppedJob = summary(key)?.job?.id;
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
    await target.resume(dir, { slurm: DEBUG, waitUntil: 'submitted' });
    const resumed = await wait('resumed: pending, in a new job', () => {
      const now = summary(key);
      return now?.status === 'pending' && now.job && now.job.id !== stoppedJob ? now : undefined;
    });
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
    await wait(
      'resumed: running',
      () => summary(key)?.status === 'running' && summary(key)?.job?.id === resumed.job?.id,
    );
    await target.stop(dir);
    await wait('stopped again', () => summary(key)?.status === 'stopped');

    // Resumed again, and stopped while its new job still waits: that job is cancelled (the Stop sent
    // to the previous job is no reason to refuse this one).
    const secondJob = summary(key)?.job?.id;
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
    try {
      await target.resume(dir, { slurm: DEBUG, waitUntil: 'submitted' });
      const queued = await wait('resumed again: pending, in a third job', () => {
        const now = summary(key);
        return now?.status === 'pending' && now.job && now.job.id !== secondJob ? now : undefined;
      });
      await target.stop(dir);
      await wait('the queued job cancelled', () => summary(key)?.job?.state === 'CANCELLED');
      await wait('stopped', () => summary(key)?.status === 'stopped');
      assert.equal(summary(key)?.job?.id, queued.job?.id);
    } finally {
      slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
    }
  });

  test('Stop on a job still pending cancels it: stopped, nothing ran', async () => {
    slurm.run('scontrol', ['update', `nodename=${node}`, 'state=drain', 'reason=steelscope-test']);
    try {
      const { dir, key } = await submit('never ran', 10);
      // Pending from run.json may come before the job watch's squeue has listed the job: delete asks that.
      await wait(
        'pending, its job polled',
        () => summary(key)?.status === 'pending' && summary(key)?.job !== undefined,
      );
      await assert.rejects(target.delete(dir), /is PENDING\. Stop it before deleting the run/);
      await target.stop(dir);
      await wait('stopped', () => summary(key)?.status === 'stopped');
      assert.equal(summary(key)?.job?.state, 'CANCELLED');
      const info = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { status: string };
      assert.equal(info.status, 'stopped', 'run.json says so');
      assert.ok(!existsSync(join(dir, 'metrics.jsonl')), 'nothing ran');
      await target.delete(dir);
      assert.ok(!existsSync(dir), 'a cancelled queued run can be deleted');
    } finally {
      slurm.run('scontrol', ['update', `nodename=${node}`, 'state=resume']);
    }
  });
});
