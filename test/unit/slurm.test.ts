// The pure parts of Slurm runs: scontrol's job records read into what the Runs view shows (states,
// reasons, tooltip), and the batch script (every value quoted, odd values refused, the signal and
// requeue flags, the resume on requeue). The script is also run by bash here with sbatch's
// environment faked, so its choice of what to run is checked, not just its text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { batchScript, checkJobOptions, type BatchScriptInput } from '../../src/host/slurm/batchScript';
import { isLiveJobState, jobTooltip, parseScontrolJob, viewStateOfJob } from '../../src/host/slurm/jobState';
import { parseSinfo } from '../../src/host/slurm/cluster';
import { scratch } from '../helpers';

// `scontrol show job -o 7` of slurm-wlm 22.05, cut to the fields around the ones read.
const PENDING_JOB =
  'JobId=7 JobName=tiny UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901753 Nice=0 Account=(null) ' +
  'QOS=(null) JobState=PENDING Reason=ReqNodeNotAvail,_UnavailableNodes:vm Dependency=(null) Requeue=1 Restarts=0 ' +
  'BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:00 TimeLimit=00:10:00 TimeMin=N/A NodeList=(null) NumNodes=1';
const RUNNING_JOB =
  'JobId=12 JobName=big JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=2 BatchFlag=1 ' +
  'RunTime=00:01:05 TimeLimit=01:00:00 NodeList=gpu[01-02] BatchHost=gpu01 NumNodes=2';

test('scontrol records: state, reason, nodes, elapsed, limit, restarts', () => {
  const pending = parseScontrolJob(PENDING_JOB);
  assert.deepEqual(pending, {
    id: '7',
    state: 'PENDING',
    reason: 'ReqNodeNotAvail,_UnavailableNodes:vm',
    nodes: '',
    elapsed: '00:00:00',
    limit: '00:10:00',
    restarts: 0,
  });
  const running = parseScontrolJob(RUNNING_JOB);
  assert.equal(running?.reason, '', 'Reason=None is no reason');
  assert.equal(running?.nodes, 'gpu[01-02]');
  assert.equal(
    jobTooltip(running!),
    'Slurm job 12: RUNNING\nnodes: gpu[01-02]\nelapsed 00:01:05 of 01:00:00\nrequeued 2 times',
  );
  assert.equal(parseScontrolJob('JobId=3 JobState=CANCELLED+ Reason=None')?.state, 'CANCELLED', 'the + suffix dropped');
  assert.equal(parseScontrolJob('slurm_load_jobs error: Invalid job id specified'), undefined);
});

test('every job state maps onto a Runs view state; only queued and running ones are alive', () => {
  const expected: Record<string, [string, boolean]> = {
    PENDING: ['pending', true],
    RUNNING: ['running', true],
    COMPLETING: ['stopping', true],
    COMPLETED: ['finished', false],
    FAILED: ['failed', false],
    CANCELLED: ['stopped', false],
    TIMEOUT: ['failed', false],
    NODE_FAIL: ['failed', false],
    PREEMPTED: ['stopped', false],
    REQUEUED: ['pending', true],
  };
  for (const [state, [view, live]] of Object.entries(expected)) {
    assert.equal(viewStateOfJob(state), view, state);
    assert.equal(isLiveJobState(state), live, state);
  }
});

const INPUT: BatchScriptInput = {
  job: { partition: 'debug', nodes: 1, gpusPerNode: 0, timeLimit: '1:00:00', account: 'proj-1' },
  jobName: "it's $HOME",
  runDir: "/shared/runs/it's $HOME",
  cli: ['env', 'A=b c', 'node', '/opt/cli.js'],
  firstArgs: ['train', '--run-dir', "/shared/runs/it's $HOME", '--name', '`rm -rf /`'],
  continueArgs: ['resume', "/shared/runs/it's $HOME"],
};

test('the batch script: #SBATCH options, USR1 before the limit, requeue; odd values refused', () => {
  const script = batchScript(INPUT);
  assert.match(script, /^#SBATCH --partition=debug$/m);
  assert.match(script, /^#SBATCH --signal=B:USR1@120$/m);
  assert.match(script, /^#SBATCH --requeue$/m);
  assert.match(script, /^#SBATCH --time=1:00:00$/m);
  assert.match(script, /^#SBATCH --account=proj-1$/m);
  assert.doesNotMatch(script, /--gpus-per-node/, 'a CPU partition asks for no GPU');
  assert.match(batchScript({ ...INPUT, job: { ...INPUT.job, gpusPerNode: 4 } }), /^#SBATCH --gpus-per-node=4$/m);
  assert.throws(() => checkJobOptions({ ...INPUT.job, partition: 'debug; rm -rf /' }), /not a Slurm name/);
  assert.throws(() => checkJobOptions({ ...INPUT.job, timeLimit: '1 hour' }), /Time limit/);
  assert.throws(() => checkJobOptions({ ...INPUT.job, nodes: 0 }), /Nodes/);
  const check = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
});

/** Runs the script with bash, the CLI replaced by one that prints its arguments, sbatch's env faked. */
function runScript(restarts: string, withRunJson: boolean): string {
  const dir = scratch('slurm-script');
  const runDir = join(dir, "run $x 'q'");
  mkdirSync(runDir);
  if (withRunJson) writeFileSync(join(runDir, 'run.json'), '{}');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'scontrol'), '#!/bin/sh\necho node1\n', { mode: 0o755 });
  const input = {
    ...INPUT,
    runDir,
    cli: ['printf', '%s|'],
    firstArgs: ['train', runDir],
    continueArgs: ['resume', runDir],
  };
  const env = {
    PATH: `${bin}:/usr/bin:/bin`,
    SLURM_JOB_ID: '5',
    SLURM_JOB_NODELIST: 'node1',
    SLURM_RESTART_COUNT: restarts,
  };
  const r = spawnSync('bash', ['-c', batchScript(input)], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  return withRunJson ? readFileSync(join(runDir, 'trainer.log'), 'utf8') : r.stdout;
}

test('the batch script starts the run, and continues it from its checkpoint when requeued', () => {
  assert.match(runScript('0', false), /train\|[^|]*run \$x 'q'\|$/, 'a new run: train, the folder literally');
  assert.match(runScript('1', true), /resume\|[^|]*run \$x 'q'\|$/, 'requeued: resume, output in its trainer.log');
  assert.match(runScript('0', true), /train\|/, 'a Resume job runs what it was asked first');
});

test('sinfo: partitions with their default, state, limit, nodes and GPUs per node', () => {
  const text =
    'debug*|up|infinite|1|(null)\ngpu|up|1-00:00:00|4|gpu:a100:8(S:0-1)\ngpu|up|1-00:00:00|2|gpu:4\nold|down|30:00|1|\n';
  assert.deepEqual(parseSinfo(text), [
    { name: 'debug', isDefault: true, up: true, timeLimit: 'infinite', nodes: 1, gpusPerNode: 0 },
    { name: 'gpu', isDefault: false, up: true, timeLimit: '1-00:00:00', nodes: 6, gpusPerNode: 8 },
    { name: 'old', isDefault: false, up: false, timeLimit: '30:00', nodes: 1, gpusPerNode: 0 },
  ]);
});
