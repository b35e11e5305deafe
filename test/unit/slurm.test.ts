// The pure parts of Slurm runs: scontrol's job records read into what the Runs view shows (states,
// reasons, tooltip), and the batch script (every value quoted, odd values refused, the signal and
// requeue flags, the resume on requeue). The script is also run by bash here with sbatch's
// environment faked, so its choice of what to run is checked, not just its text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { batchScript, checkJobOptions, type BatchScriptInput } from '../../src/host/slurm/batchScript';
import {
  isLiveJobState,
  isQueuedJobState,
  jobTooltip,
  parseScontrolJob,
  viewStateOfJob,
} from '../../src/host/slurm/jobState';
import { parseSinfo } from '../../src/host/slurm/cluster';
import { checkNewRunDir, failPendingRun, markRequeued, markRequeueFailed } from '../../src/core/train/session';
import { heldByOtherTrainer } from '../../src/shared/node/pid';
import { UsageError } from '../../src/core/errors';
import { pendingRunInfo, REQUEUE_EXIT_CODE } from '../../src/shared/run';
import { rendezvousFromEnv, torchrunArgs } from '../../src/cli/torchrun';
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
    requeue: true,
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

test('preempted or requeued: a job that requeues comes back pending and lives on; one that does not was stopped', () => {
  const preempted = parseScontrolJob('JobId=9 JobState=PREEMPTED Reason=None Requeue=1 Restarts=0');
  assert.equal(preempted?.requeue, true);
  assert.equal(viewStateOfJob('PREEMPTED', true), 'pending');
  assert.equal(isLiveJobState('PREEMPTED', true), true, 'it will run again: its run is not stale');
  assert.equal(viewStateOfJob('PREEMPTED', false), 'stopped');
  assert.equal(isLiveJobState('PREEMPTED', false), false);
  for (const state of ['REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED']) {
    assert.equal(viewStateOfJob(state), 'pending', state);
    assert.equal(isLiveJobState(state), true, state);
    assert.equal(isQueuedJobState(state), true, `${state}: Stop cancels it outright`);
  }
  assert.equal(isQueuedJobState('RUNNING'), false, 'Stop asks a running job for its checkpoint');
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
function runScript(
  restarts: string,
  runJson: string | undefined,
  cliStatus = 0,
  opts: { checkpoint?: boolean; jobState?: string; term?: boolean; first?: string; refuseRequeue?: boolean } = {},
): { out: string; calls: string } {
  const dir = scratch('slurm-script');
  const runDir = join(dir, "run $x 'q'");
  mkdirSync(runDir);
  if (runJson !== undefined) writeFileSync(join(runDir, 'run.json'), runJson);
  if (opts.checkpoint) {
    mkdirSync(join(runDir, 'checkpoints', 'step-00000004'), { recursive: true });
    writeFileSync(join(runDir, 'checkpoints', 'step-00000004', 'DONE'), '');
  }
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const calls = join(dir, 'calls');
  // scontrol: the node list, the job RUNNING; every call of scontrol and scancel noted.
  const state = opts.jobState ?? 'JobState=RUNNING Reason=None';
  // refuseRequeue: `scontrol requeue` fails, as when slurmctld refuses it.
  const refuse = opts.refuseRequeue ? 'if [ "$1" = requeue ]; then exit 1; fi\n' : '';
  const fake = `#!/bin/sh\necho "$(basename "$0") $*" >>'${calls}'\n${refuse}echo "node1 ${state} Requeue=1 "\n`;
  writeFileSync(join(bin, 'scontrol'), fake, { mode: 0o755 });
  writeFileSync(join(bin, 'scancel'), fake, { mode: 0o755 });
  const input = {
    ...INPUT,
    runDir,
    // The CLI: prints its arguments; the trainer exits with cliStatus, slurm-requeue is noted and succeeds.
    cli: [
      'sh',
      '-c',
      `if [ "$1" = slurm-requeue ]; then echo "cli $*" >>'${calls}'; exit 0; fi; printf '%s|' "$@"; ` +
        // term: Slurm's TERM reaches the batch shell (the trainer's own copy is the trainer's business).
        `${opts.term ? 'kill -TERM $PPID; ' : ''}exit ${cliStatus}`,
      'cli',
    ],
    firstArgs: [opts.first ?? 'train', runDir],
    continueArgs: ['resume', runDir],
  };
  const env = {
    PATH: `${bin}:/usr/bin:/bin`,
    SLURM_JOB_ID: '5',
    SLURM_JOB_NODELIST: 'node1',
    SLURM_RESTART_COUNT: restarts,
  };
  const r = spawnSync('bash', ['-c', batchScript(input)], { encoding: 'utf8', env });
  // With term, the fake trainer exits as the signal comes: wait's status may be the signal's (143).
  const requeued = cliStatus === REQUEUE_EXIT_CODE && !opts.refuseRequeue;
  if (!opts.term) assert.equal(r.status, requeued ? 0 : cliStatus, r.stderr);
  return { out: r.stdout, calls: existsSync(calls) ? readFileSync(calls, 'utf8') : '' };
}

const PENDING_RUN_JSON = JSON.stringify({ status: 'pending', slurm_job_id: '5' }, null, 2);

test('the batch script starts the run, and continues it from its checkpoint when requeued', () => {
  assert.match(
    runScript('0', PENDING_RUN_JSON).out,
    /train\|[^|]*run \$x 'q'\|$/,
    'a new run: train, the folder literally',
  );
  const taken = JSON.stringify({ status: 'running' }, null, 2);
  // A requeued run.json says pending whether or not the trainer took it: the checkpoint decides.
  assert.match(
    runScript('1', PENDING_RUN_JSON, 0, { checkpoint: true }).out,
    /resume\|[^|]*run \$x 'q'\|$/,
    'requeued after the trainer saved a checkpoint: resume',
  );
  assert.match(runScript('1', PENDING_RUN_JSON).out, /train\|/, 'requeued before the trainer ran: train as asked');
  assert.match(
    runScript('0', taken, 0, { checkpoint: true }).out,
    /train\|/,
    'a Resume job runs what it was asked first',
  );
});

test('a fine-tuning job (sft) requeued after its checkpoint resumes it; before one, it starts the fine-tuning again', () => {
  const sft = { first: 'sft' };
  assert.match(runScript('0', PENDING_RUN_JSON, 0, sft).out, /^sft\|/m, 'first: sft as asked');
  assert.match(
    runScript('1', PENDING_RUN_JSON, 0, { ...sft, checkpoint: true }).out,
    /resume\|[^|]*run \$x 'q'\|$/,
    'requeued after a checkpoint: resume the fine-tuning run',
  );
  assert.match(runScript('1', PENDING_RUN_JSON, 0, sft).out, /sft\|/, 'requeued before a checkpoint: sft again');
});

test('a trainer that checkpointed on USR1 by itself (exit 75): run.json marked pending, then the job requeued', () => {
  const { calls } = runScript('0', PENDING_RUN_JSON, REQUEUE_EXIT_CODE);
  assert.match(calls, /^cli slurm-requeue .*run \$x 'q'\nscontrol requeue 5$/m, 'marked before the requeue');
  assert.doesNotMatch(runScript('0', PENDING_RUN_JSON, 0).calls, /requeue/, 'a finished trainer: no requeue');
});

test('a requeue Slurm refuses: run.json marked stopped again (never left pending), the job ends with the trainer status', () => {
  const { calls, out } = runScript('0', PENDING_RUN_JSON, REQUEUE_EXIT_CODE, { refuseRequeue: true });
  assert.match(
    calls,
    /^cli slurm-requeue .*run \$x 'q'\nscontrol requeue 5\ncli slurm-requeue --failed .*run \$x 'q'$/m,
    'marked pending, the requeue refused, marked stopped',
  );
  assert.match(out, /could not be requeued/);
});

test('a TERM: Stop (job RUNNING) cancels the job; Slurm requeueing it marks run.json pending; a cancel neither', () => {
  const term = (jobState: string) => runScript('0', PENDING_RUN_JSON, 0, { term: true, jobState }).calls;
  const stop = term('JobState=RUNNING Reason=None');
  assert.match(stop, /^scancel 5$/m);
  assert.doesNotMatch(stop, /slurm-requeue/);
  const requeuedStates = [
    'JobState=COMPLETING Reason=None Restarts=1', // scontrol requeue, as slurm-wlm 22.05 shows it meanwhile
    'JobState=REQUEUED Reason=None',
    'JobState=PENDING Reason=BeginTime',
    'JobState=PREEMPTED Reason=None',
  ];
  for (const state of requeuedStates) {
    const requeued = term(state);
    assert.match(requeued, /^cli slurm-requeue /m, state);
    assert.doesNotMatch(requeued, /^scancel/m, state);
  }
  for (const cancelled of ['JobState=CANCELLED Reason=None', 'JobState=COMPLETING Reason=None Restarts=0'])
    assert.doesNotMatch(term(cancelled), /slurm-requeue|^scancel/m, `cancelled outright: ${cancelled}`);
});

test('sinfo: partitions with their default, state, limit, nodes (idle of them) and GPUs per node', () => {
  const text =
    'debug*|up|infinite|1|(null)|0/1/0/1\ngpu|up|1-00:00:00|4|gpu:a100:8(S:0-1)|3/1/0/4\n' +
    'gpu|up|1-00:00:00|2|gpu:4|0/2/0/2\nold|down|30:00|1||0/0/1/1\n';
  assert.deepEqual(parseSinfo(text), [
    { name: 'debug', isDefault: true, up: true, timeLimit: 'infinite', nodes: 1, idleNodes: 1, gpusPerNode: 0 },
    { name: 'gpu', isDefault: false, up: true, timeLimit: '1-00:00:00', nodes: 6, idleNodes: 3, gpusPerNode: 8 },
    { name: 'old', isDefault: false, up: false, timeLimit: '30:00', nodes: 1, idleNodes: 0, gpusPerNode: 0 },
  ]);
});

test("a trainer takes over its own job's pending run.json (and no other); one that fails first says why there", () => {
  const dir = scratch('slurm-adopt');
  const pending = pendingRunInfo({ id: 'p', name: 'n', createdAt: '', host: 'login', jobId: '41' });
  writeFileSync(join(dir, 'run.json'), JSON.stringify(pending));
  writeFileSync(join(dir, 'slurm-job-1.sh'), '#!/bin/bash\n');
  const saved = process.env.SLURM_JOB_ID;
  try {
    process.env.SLURM_JOB_ID = '42';
    assert.throws(() => checkNewRunDir(dir), /already holds a run/, "another job's run");
    process.env.SLURM_JOB_ID = '41';
    assert.equal(checkNewRunDir(dir), undefined, 'taken over; a failure is recorded, not discarded');
    failPendingRun(dir, new UsageError('no such preset'));
    const failed = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    assert.deepEqual([failed.status, failed.exit.code, failed.exit.reason], ['failed', 2, 'no such preset']);
    assert.throws(() => checkNewRunDir(dir), /already holds a run/, 'a failed run is not taken over');
    // Requeued after the trainer stopped: pending again, everything else kept; resumable by this job only.
    const stopped = {
      ...failed,
      status: 'stopped',
      pid: 777,
      config: { seed: 1 },
      exit: { code: 0, reason: 'x', at: '' },
    };
    writeFileSync(join(dir, 'run.json'), JSON.stringify(stopped));
    assert.equal(markRequeued(dir), 'pending');
    const marked = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    assert.deepEqual(marked, { ...stopped, status: 'pending', pid: 41, exit: null });
    assert.equal(heldByOtherTrainer(marked), false, "this job's trainer may resume it");
    process.env.SLURM_JOB_ID = '42';
    assert.equal(markRequeued(dir), 'not-this-job');
    process.env.SLURM_JOB_ID = '41';
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ ...stopped, status: 'finished' }));
    assert.equal(markRequeued(dir), 'ended', 'a finished run is not continued');
    assert.equal(JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')).status, 'finished');
    // Marked pending, then Slurm refused the requeue: stopped again, saying so (the job ends).
    writeFileSync(join(dir, 'run.json'), JSON.stringify(stopped));
    markRequeued(dir);
    process.env.SLURM_JOB_ID = '42';
    assert.equal(markRequeueFailed(dir), 'not-this-job', "another job's pending run is left as it is");
    process.env.SLURM_JOB_ID = '41';
    assert.equal(markRequeueFailed(dir), 'stopped');
    const undone = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
    assert.equal(undone.status, 'stopped');
    assert.match(undone.exit.reason, /Slurm did not requeue job 41: Resume continues the run/);
    assert.equal(markRequeueFailed(dir), 'not-this-job', 'a stopped run is not pending');
  } finally {
    if (saved === undefined) delete process.env.SLURM_JOB_ID;
    else process.env.SLURM_JOB_ID = saved;
  }
});

test('several nodes: srun runs the CLI once per node, torchrun meets on the first node (c10d, job id, port)', () => {
  const torchArgs = ['train', '--run-dir', '/r', '--engine', 'torch', '--nproc', '4'];
  const input = { ...INPUT, job: { ...INPUT.job, nodes: 2 }, firstArgs: torchArgs };
  const script = batchScript(input);
  assert.match(script, /^srun --kill-on-bad-exit=1 --ntasks-per-node=1 "\$\{cli\[@\]\}" "\$\{args\[@\]\}" &$/m);
  assert.match(script, /^rdzv_port=\$\(\(29500 \+ SLURM_JOB_ID % 1000\)\)$/m, 'a port of its own per job');
  assert.match(batchScript({ ...input, job: { ...input.job, rdzvPort: 6000 } }), /^rdzv_port=6000$/m);
  assert.throws(() => batchScript({ ...input, job: { ...input.job, rdzvPort: 70000 } }), /TCP port/);
  assert.throws(() => batchScript({ ...input, firstArgs: ['train'] }), /several nodes runs the PyTorch engine/);
  assert.doesNotMatch(batchScript(INPUT), /^srun|RDZV/m, 'one node: the CLI runs in the batch shell, standalone');
  // What the supervisors get: bash runs it with srun and scontrol faked.
  const dir = scratch('slurm-multinode');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'scontrol'), '#!/bin/sh\nprintf "gpu07\\ngpu08\\n"\n', { mode: 0o755 });
  const srun = '#!/bin/sh\nwhile [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n'; // its options dropped
  writeFileSync(join(bin, 'srun'), srun, { mode: 0o755 });
  const env = {
    PATH: `${bin}:/usr/bin:/bin`,
    SLURM_JOB_ID: '12345',
    SLURM_NNODES: '2',
    SLURM_JOB_NODELIST: 'gpu[07-08]',
  };
  const printEnv = ['sh', '-c', 'echo "$STEELSCOPE_NNODES $STEELSCOPE_RDZV_ENDPOINT $STEELSCOPE_RDZV_ID"'];
  const r = spawnSync('bash', ['-c', batchScript({ ...input, runDir: dir, cli: printEnv })], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^2 gpu07:29845 12345-0$/m);
});

test('torchrun: --standalone-like on one node; on several, c10d at the first node with nnodes and the job id', () => {
  const one = torchrunArgs(2, undefined, '/logs');
  assert.deepEqual(one.slice(0, 6), ['--nnodes', '1', '--rdzv_backend', 'c10d', '--rdzv_endpoint', 'localhost:0']);
  const rdzv = rendezvousFromEnv({
    STEELSCOPE_NNODES: '4',
    STEELSCOPE_RDZV_ENDPOINT: 'gpu07:29845',
    STEELSCOPE_RDZV_ID: '12345-0',
    SLURM_NODEID: '3',
  });
  assert.deepEqual(rdzv, { nnodes: 4, endpoint: 'gpu07:29845', id: '12345-0', nodeRank: 3 });
  assert.deepEqual(torchrunArgs(8, rdzv, '/logs'), [
    ...['--nnodes', '4', '--rdzv_backend', 'c10d', '--rdzv_endpoint', 'gpu07:29845', '--rdzv_id', '12345-0'],
    ...['--nproc_per_node', '8', '--redirects', '0:1,1:1,2:1,3:1,4:1,5:1,6:1,7:1'],
    ...['--tee', '0:1,1:1,2:1,3:1,4:1,5:1,6:1,7:1', '--log_dir', '/logs'],
  ]);
  assert.equal(rendezvousFromEnv({}), undefined, 'one node without any of it');
  assert.throws(
    () => rendezvousFromEnv({ STEELSCOPE_NNODES: '2', STEELSCOPE_RDZV_ID: 'x', SLURM_NODEID: '0' }),
    /ENDPOINT/,
  );
  const noRank = { STEELSCOPE_NNODES: '2', STEELSCOPE_RDZV_ENDPOINT: 'h:1', STEELSCOPE_RDZV_ID: 'x' };
  assert.throws(() => rendezvousFromEnv(noRank), /NODE_RANK/);
});
