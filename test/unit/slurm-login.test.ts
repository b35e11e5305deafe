// A Slurm login node as the editor shows it: the user's accounts from sacctmgr, partitions (the
// default first) in the host's tooltip with every value escaped, which launcher a start, a liveness
// check or a Stop goes to (Slurm for a job, the host's own CLI otherwise), and the jobs squeue
// lists: which is a run's, and the status it gives the run in the Runs view.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAssociations, partitionsDefaultFirst, describePartition } from '../../src/host/slurm/loginNode';
import { parseSinfo } from '../../src/host/slurm/cluster';
import { hostTooltipMarkdown, runTooltipMarkdown } from '../../src/host/views/runTooltip';
import { LoginNodeLauncher } from '../../src/host/slurm/hostLauncher';
import { jobOfRun, parseSqueue, SETTLE_POLL_MS, SlurmJobWatch } from '../../src/host/slurm/jobWatch';
import { statusWithJob } from '../../src/host/slurm/jobState';
import type { Launcher, LaunchRequest } from '../../src/host/runs/runControl';
import type { RunSummary } from '../../src/host/runs/types';
import type { ObservedRun } from '../../src/shared/run';

test('sacctmgr associations: accounts merged, their QoS listed once, blank lines skipped', () => {
  const text = 'proj-a|normal,high\nproj-a|normal\nproj-b|\n\n';
  assert.deepEqual(parseAssociations(text), [
    { account: 'proj-a', qos: ['high', 'normal'] },
    { account: 'proj-b', qos: [] },
  ]);
  assert.deepEqual(parseAssociations(''), []);
});

test('partitions: the default one first; each described by nodes, GPUs and limit', () => {
  const partitions = parseSinfo(
    'cpu|up|1-00:00:00|4|(null)|4/0/0/4\ngpu*|up|infinite|2|gpu:a100:8|1/1/0/2\nold|down|30:00|1|(null)|0/0/1/1\n',
  );
  const ordered = partitionsDefaultFirst(partitions);
  assert.deepEqual(
    ordered.map((p) => p.name),
    ['gpu', 'cpu', 'old'],
  );
  assert.equal(describePartition(ordered[0]!), '2 nodes (1 idle) · 8 GPUs/node · no time limit');
  assert.equal(describePartition(ordered[2]!), '1 node (0 idle) · CPU only · limit 30:00 · down');
});

test("the host's tooltip names it a Slurm login node and escapes what the cluster says", () => {
  const partitions = parseSinfo('debug*|up|infinite|1|(null)|0/1/0/1\n[x](http://e)|up|1:00|1|(null)|0/1/0/1\n');
  const md = hostTooltipMarkdown('login_1', { partitions, accounts: [{ account: 'a*b', qos: [] }] });
  assert.match(md, /^\*\*login\\_1\*\* — Slurm login node/);
  assert.match(md, /\*\*debug\*\* \(default\): 1 node \\\(1 idle\\\) · CPU only · no time limit/);
  assert.ok(!md.includes('](http'), 'a partition name is no link');
  assert.match(md, /accounts: a\\\*b/);
});

test('a start asking for a Slurm job is submitted; a run naming a job is watched and stopped through Slurm', async () => {
  const calls: string[] = [];
  const fake = (name: string): Launcher => ({
    launch: async () => (calls.push(`${name}.launch`), { pid: 1, running: async () => true, exitNote: async () => '' }),
    isAlive: async () => (calls.push(`${name}.isAlive`), true),
    terminate: async () => void calls.push(`${name}.terminate`),
  });
  const launcher = new LoginNodeLauncher(fake('host'), fake('slurm'));
  const request: LaunchRequest = { args: ['train'], cwd: '/r', log: '/r/l', runDir: '/r/a', continueArgs: [] };
  await launcher.launch(request);
  await launcher.launch({ ...request, slurm: { partition: 'debug', nodes: 1, gpusPerNode: 0, timeLimit: '' } });
  const run = { pid: 5, status: 'running' } as ObservedRun;
  await launcher.isAlive(run);
  await launcher.terminate({ ...run, slurm_job_id: '12' }, '/r/a');
  assert.deepEqual(calls, ['host.launch', 'slurm.launch', 'host.isAlive', 'slurm.terminate']);
});

test('squeue lines: state, reason, nodes, elapsed, limit; None/(null)/UNLIMITED read as nothing; odd lines skipped', () => {
  const text = [
    '41|tiny-20261202-101500|PENDING|Priority||0:00|10:00',
    '42|tiny-20261202-101500|RUNNING|None|node1|1:05|UNLIMITED',
    '43|a|b|COMPLETED',
    'x|y|RUNNING|None|n|0:01|1:00',
    '',
  ].join('\n');
  assert.deepEqual(
    parseSqueue(text).map((j) => [j.id, j.state, j.reason, j.nodes, j.elapsed, j.limit]),
    [
      ['41', 'PENDING', 'Priority', '', '0:00', '10:00'],
      ['42', 'RUNNING', '', 'node1', '1:05', ''],
    ],
  );
});

test("a run's job: the one run.json names, or (no run.json yet, or a resumed run's newer job) by its folder's name", () => {
  const dir = '/shared/runs/tiny-20261202-101500';
  const jobs = parseSqueue(
    '7|tiny-20261202-101500|CANCELLED|None|n|0:30|10:00\n9|tiny-20261202-101500|PENDING|Resources||0:00|10:00\n' +
      '8|other|RUNNING|None|n|0:10|10:00\n',
  );
  assert.equal(jobOfRun(jobs, dir, undefined)?.id, '9', 'the newest job of that name');
  const run = { pid: 1, status: 'stopped', slurm_job_id: '7' } as ObservedRun;
  assert.equal(jobOfRun(jobs, dir, run)?.id, '9', 'a resumed run waits in its new job');
  assert.equal(jobOfRun(jobs, '/shared/runs/x', { ...run, slurm_job_id: '8' })?.id, '8');
  assert.equal(jobOfRun(jobs, dir, { ...run, slurm_job_id: undefined }), undefined, 'not a Slurm run');
});

test('the status a job gives a run: pending while queued, the trainer’s once it runs, the job’s when it ended unsaid', () => {
  const job = (state: string, id = '5') => ({ id, state, reason: '', nodes: '', elapsed: '', limit: '', restarts: 0 });
  const running = { pid: 1, status: 'running', slurm_job_id: '5' } as ObservedRun;
  assert.equal(statusWithJob(undefined, undefined, job('PENDING')), 'pending');
  assert.equal(statusWithJob(undefined, undefined, job('RUNNING')), 'starting', 'before run.json');
  assert.equal(statusWithJob(undefined, undefined, job('COMPLETED')), 'failed', 'ended without a run.json');
  assert.equal(statusWithJob(undefined, undefined, job('CANCELLED')), 'stopped');
  assert.equal(statusWithJob(running, true, job('RUNNING')), 'running');
  assert.equal(statusWithJob(running, true, job('PENDING')), 'pending', 'requeued');
  assert.equal(statusWithJob(running, false, job('TIMEOUT')), 'failed', 'killed at its limit');
  assert.equal(statusWithJob(running, false, job('NODE_FAIL')), 'failed');
  assert.equal(statusWithJob(running, false, job('PREEMPTED')), 'stopped');
  assert.equal(statusWithJob({ ...running, status: 'stopped' }, false, job('CANCELLED')), 'stopped');
  assert.equal(statusWithJob({ ...running, status: 'finished' }, false, job('COMPLETED')), 'finished');
});

test('stopped while its job lives is stopping: a requeue never shows a final state; a failed requeue or a Stop ends stopped', () => {
  const job = (state: string, id = '5') => ({ id, state, reason: '', nodes: '', elapsed: '', limit: '', restarts: 0 });
  const run = (status: string) => ({ pid: 1, status, slurm_job_id: '5' }) as ObservedRun;
  const FINAL = ['stopped', 'finished', 'failed', 'stale'];
  // What an observer may see as run.json and squeue change, the job as last polled (it may lag
  // run.json by a poll, or run ahead of it): time limit or preemption, then the requeue.
  const requeue: [string, string][] = [
    ['running', 'RUNNING'],
    ['stopping', 'RUNNING'],
    ['stopped', 'RUNNING'], // checkpoint saved; slurm-requeue not yet run
    ['stopped', 'COMPLETING'], // a preemption (scontrol requeue): Slurm shows the job completing
    ['stopped', 'REQUEUED'],
    ['pending', 'RUNNING'], // run.json marked pending, squeue not polled since
    ['pending', 'COMPLETING'],
    ['pending', 'PENDING'],
    ['pending', 'REQUEUED'],
  ];
  for (const [status, state] of requeue) {
    const shown = statusWithJob(run(status), true, job(state));
    assert.ok(!FINAL.includes(shown), `run.json ${status}, job ${state}: ${shown}`);
  }
  assert.equal(statusWithJob(run('stopped'), undefined, job('RUNNING')), 'stopping', 'not final while the job runs');
  assert.equal(statusWithJob(run('stopped'), undefined, job('COMPLETING')), 'stopping');
  // The requeue failed: the script ends the job, run.json stopped (slurm-requeue --failed): final.
  assert.equal(statusWithJob(run('stopped'), undefined, job('FAILED')), 'stopped', 'exit 75, not requeued');
  assert.equal(statusWithJob(run('stopped'), undefined, job('COMPLETED')), 'stopped');
  assert.equal(statusWithJob(run('stopped'), undefined, job('CANCELLED')), 'stopped', 'a Stop');
  // Another job of the run (a Resume's, queued) says pending; a live job run.json does not name is no reason to wait.
  assert.equal(statusWithJob(run('stopped'), undefined, job('PENDING', '6')), 'pending');
  assert.equal(statusWithJob(run('stopped'), undefined, job('RUNNING', '4')), 'stopped', 'an older job');
  assert.equal(statusWithJob(run('finished'), undefined, job('COMPLETING')), 'finished', 'finished is final at once');
});

/** The tooltip of a pending run on host `c` whose job is `job`. */
const pendingTooltip = (job: RunSummary['job']) =>
  runTooltipMarkdown({
    key: 'k',
    hostId: 'ssh:c',
    hostLabel: 'c',
    dir: '/r/a',
    name: 'a',
    status: 'pending',
    checkpoints: [],
    malformed: { metrics: 0, samples: 0, events: 0 },
    job,
  });

test('squeue is asked every interval, and every second while a run is stopping (its job ends within seconds)', () => {
  const job = { id: '5', state: 'RUNNING', reason: '', nodes: 'n', elapsed: '1:00', limit: '10:00', restarts: 0 };
  const info = { pid: 1, status: 'running', slurm_job_id: '5' } as ObservedRun;
  const summary = { key: 'h::/r', dir: '/r', info, job } as RunSummary;
  let polls = 0;
  const host = {
    state: 'connected' as const,
    sh: () => {
      polls++;
      return new Promise<string>(() => {}); // never answers: each tick below sees one poll begin
    },
  };
  mock.timers.enable({ apis: ['setInterval'] });
  const watch = new SlurmJobWatch(host, { runs: () => [summary], setJob: () => {} }, () => true, 10_000);
  try {
    watch.start();
    mock.timers.tick(9 * SETTLE_POLL_MS);
    assert.equal(polls, 0, 'a running run: nothing before the interval');
    mock.timers.tick(SETTLE_POLL_MS);
    assert.equal(polls, 1, 'one poll at the interval');
  } finally {
    watch.dispose();
  }
  // run.json says stopped while the job it names still runs: the next poll comes a second later.
  summary.info = { ...info, status: 'stopped' };
  const stopping = new SlurmJobWatch(host, { runs: () => [summary], setJob: () => {} }, () => true, 10_000);
  try {
    stopping.start();
    mock.timers.tick(SETTLE_POLL_MS);
    assert.equal(polls, 2, 'a stopping run is polled a second later');
  } finally {
    stopping.dispose();
    mock.timers.reset();
  }
});

test("a run's tooltip shows its job: id, state and reason, nodes, elapsed of limit (escaped)", () => {
  const [job] = parseSqueue('41|r|PENDING|QOSMax_[x](y)||0:00|10:00\n');
  const md = pendingTooltip(job);
  assert.match(md, /Slurm job 41: PENDING \\\(QOSMax\\_\\\[x\\\]\\\(y\\\)\\\)/);
  assert.match(md, /elapsed 0:00 of 10:00/);
  assert.doesNotMatch(md, /cannot start/);
  const [hopeless] = parseSqueue('42|r|PENDING|PartitionNodeLimit||0:00|10:00\n');
  const said = pendingTooltip(hopeless);
  assert.match(said, /Slurm cannot start this job as asked; Stop cancels it/);
});
