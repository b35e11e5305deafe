// RunControl, the one implementation of start / stop / resume behind every target, over this
// machine's files and a scripted Launcher (no trainer process): folder names and their
// reservation, the log that moves into the run, a trainer that dies before run.json, the stop
// and resume guards. The real trainers are in test/integration/local-target.test.ts and ssh.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { isActiveStatus, pendingRunInfo, RUN_FORMAT, type ObservedRun, type RunInfo } from '../../src/shared/run';
import { localRunFiles } from '../../src/host/runs/localTarget';
import {
  nameOfFolder,
  RunControl,
  type LaunchedTrainer,
  type Launcher,
  type LaunchRequest,
} from '../../src/host/runs/runControl';
import { scratch } from '../helpers';

function runInfo(pid: number, status: RunInfo['status'] = 'running'): RunInfo {
  return {
    format: RUN_FORMAT,
    id: 'r1',
    name: 'my run',
    createdAt: '2026-01-01T00:00:00Z',
    host: 'h',
    pid,
    status,
    step: 0,
    config: {} as RunInfo['config'],
    backend: { name: 'cpu', skipped: [] },
    data: { input: 'default', files: [] },
    resumes: [],
    exit: null,
  };
}

/** What a scripted trainer does when launched: write to its log, write run.json, or die. */
type Script = (request: LaunchRequest, pid: number, launcher: ScriptedLauncher) => void;

class ScriptedLauncher implements Launcher {
  readonly launched: LaunchRequest[] = [];
  readonly alive = new Set<number>();
  readonly terminated: number[] = [];
  readonly exitNotes = new Map<number, string>();
  /** Set: terminate refuses as a launcher does when the process is not verifiably the run's trainer. */
  refuse: string | undefined;
  private nextPid = 1000;

  constructor(private readonly script: Script) {}

  async launch(request: LaunchRequest): Promise<LaunchedTrainer> {
    const pid = this.nextPid++;
    this.launched.push(request);
    this.alive.add(pid);
    this.script(request, pid, this);
    return { pid, running: async () => this.alive.has(pid), exitNote: async () => this.exitNotes.get(pid) ?? '' };
  }

  async isAlive(info: ObservedRun): Promise<boolean> {
    return this.alive.has(info.pid);
  }

  async terminate(info: ObservedRun): Promise<void> {
    if (this.refuse) throw new Error(this.refuse);
    this.terminated.push(info.pid);
  }
}

/** A trainer that says hello in its log and writes run.json into the run dir of its arguments. */
const healthy: Script = (request, pid) => {
  appendFileSync(request.log, `trainer ${pid} up\n`);
  const runDir = request.args[0] === 'resume' ? request.args[1] : request.args[request.args.indexOf('--run-dir') + 1];
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, 'run.json'), JSON.stringify(runInfo(pid)));
};

const NOON = new Date(2026, 0, 2, 12, 0, 5);

function control(root: string, launcher: Launcher): RunControl {
  return new RunControl({
    files: localRunFiles,
    launcher,
    runsRoot: async () => root,
    where: '',
    startTimeoutMs: 10_000,
    pollMs: 1,
    aliveCheckEvery: 1,
    now: () => NOON,
  });
}

test('start names the folder slug-stamp, -2 when taken; the log moves in; nothing is left beside it', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher(healthy);
  const runs = control(root, launcher);
  const first = await runs.start({ name: '唐詩 run', preset: 'tiny', data: 'default', steps: 5, sets: ['lr=0.01'] });
  const second = await runs.start({ name: '唐詩 run', preset: 'tiny', data: 'default', steps: 5 });
  assert.equal(first, join(root, '唐詩-run-20260102-120005'));
  assert.equal(second, `${first}-2`);
  assert.deepEqual(launcher.launched[0].args, [
    'train',
    '--preset',
    'tiny',
    '--data',
    'default',
    '--run-dir',
    first,
    '--steps',
    '5',
    '--set',
    'lr=0.01',
    '--name',
    '唐詩 run',
  ]);
  assert.equal(launcher.launched[0].cwd, root);
  assert.equal(readFileSync(join(first, 'trainer.log'), 'utf8'), 'trainer 1000 up\n');
  assert.deepEqual(readdirSync(root).sort(), ['唐詩-run-20260102-120005', '唐詩-run-20260102-120005-2']);
  assert.deepEqual(await runs.listRunDirs(), [first, second]);
});

test('a trainer that dies before run.json rejects start with its exit and last log lines, and leaves nothing', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher((request, pid, l) => {
    appendFileSync(request.log, 'loading…\nerror: unknown setting no_such_key\n');
    l.alive.delete(pid);
    l.exitNotes.set(pid, 'with code 2');
  });
  await assert.rejects(control(root, launcher).start({ preset: 'tiny', data: 'default', steps: 5 }), (err: Error) => {
    assert.match(
      err.message,
      /^The trainer exited with code 2 before the run started\.\nloading…\nerror: unknown setting no_such_key$/,
    );
    return true;
  });
  assert.deepEqual(readdirSync(root), [], 'the pending log is removed with the run that never was');
});

test('stop sends one SIGTERM; a second is refused, and so is a stop of a run whose trainer is gone', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher(healthy);
  const runs = control(root, launcher);
  const dir = await runs.start({ preset: 'tiny', data: 'default', steps: 5 });
  await runs.stop(dir);
  assert.deepEqual(launcher.terminated, [1000]);
  await assert.rejects(runs.stop(dir), /already requested/);
  launcher.alive.delete(1000);
  await assert.rejects(runs.stop(dir), /is not running \(status running\)/);
  assert.deepEqual(launcher.terminated, [1000]);
});

test('resume is refused while a trainer holds the run; afterwards it waits until the new trainer has taken it', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher(healthy);
  const runs = control(root, launcher);
  const dir = await runs.start({ preset: 'tiny', data: 'default', steps: 5 });
  await assert.rejects(runs.resume(dir, { steps: 9 }), /still running \(pid 1000\)\. Stop it first/);
  await assert.rejects(runs.delete(dir), /still running/);
  launcher.alive.delete(1000);
  await runs.resume(dir, { steps: 9, checkpoint: join(dir, 'checkpoints', 'step-00000004') });
  assert.deepEqual(launcher.launched[1].args, [
    'resume',
    dir,
    '--steps',
    '9',
    '--checkpoint',
    join(dir, 'checkpoints', 'step-00000004'),
  ]);
  assert.equal((await runs.readInfo(dir)).pid, 1001);
  assert.equal(
    readFileSync(join(dir, 'trainer.log'), 'utf8'),
    'trainer 1000 up\ntrainer 1001 up\n',
    'resume appends to the log',
  );
  launcher.alive.delete(1001);
  await runs.delete(dir);
  assert.equal(existsSync(dir), false);
});

test('the engine, its process count and Python reach the CLI as flags, on start and on resume', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher(healthy);
  const runs = control(root, launcher);
  const engine = { name: 'torch', nproc: 2, python: '/usr/bin/python3' } as const;
  const dir = await runs.start({ preset: 'tiny', data: 'default', steps: 5, engine });
  assert.deepEqual(launcher.launched[0].args.slice(-6), [
    '--engine',
    'torch',
    '--nproc',
    '2',
    '--python',
    '/usr/bin/python3',
  ]);
  launcher.alive.delete(1000);
  await runs.resume(dir, { engine: { name: 'torch', nproc: 'auto' } });
  assert.deepEqual(launcher.launched[1].args, ['resume', dir, '--engine', 'torch', '--nproc', 'auto']);
});

test('a fine-tuning request starts `sft --from` the checkpoint on its chat data, with the engine flags', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher(healthy);
  const runs = control(root, launcher);
  const from = '/runs/base/checkpoints/step-00000080';
  const engine = { name: 'torch', nproc: 1 } as const;
  const dir = await runs.start({ name: 'chat', preset: 'fine-tune', data: 'poetry-sft', steps: 40, from, engine });
  assert.equal(dir, join(root, 'chat-20260102-120005'));
  assert.deepEqual(launcher.launched[0].args, [
    'sft',
    '--from',
    from,
    '--data',
    'poetry-sft',
    '--run-dir',
    dir,
    '--steps',
    '40',
    '--name',
    'chat',
    '--engine',
    'torch',
    '--nproc',
    '1',
  ]);
  // What a requeued Slurm job runs once the fine-tuning saved a checkpoint: resume it, on its engine.
  assert.deepEqual(launcher.launched[0].continueArgs, ['resume', dir, '--engine', 'torch', '--nproc', '1']);
});

test('a stop the launcher refuses sends nothing and can be tried again', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher(healthy);
  const runs = control(root, launcher);
  const dir = await runs.start({ preset: 'tiny', data: 'default', steps: 5 });
  launcher.refuse = 'Not stopping run my run: process 1000 is not a steelscope trainer. Nothing was signalled.';
  await assert.rejects(runs.stop(dir), /Nothing was signalled/);
  launcher.refuse = undefined;
  await runs.stop(dir);
  assert.deepEqual(launcher.terminated, [1000]);
});

test('a start that waits only until submitted (a queued Slurm job): its empty folder is listed, named, and deletable', async () => {
  const root = join(scratch('run-control'), 'runs');
  const launcher = new ScriptedLauncher(() => undefined); // queued: no trainer yet, no run.json
  const runs = control(root, launcher);
  const dir = await runs.start({
    name: 'Queued Run',
    preset: 'tiny',
    data: 'default',
    steps: 5,
    waitUntil: 'submitted',
  });
  assert.equal(dir, join(root, 'queued-run-20260102-120005'));
  assert.deepEqual(readdirSync(dir), [], 'the folder exists, empty (the trainer accepts an empty one)');
  const log = join(root, '.queued-run-20260102-120005.trainer.log');
  assert.ok(existsSync(log), 'the job log stays beside it until the trainer takes the run');
  assert.deepEqual(await runs.listRunDirs(), [dir], 'listed after a reload, before run.json');
  assert.equal(nameOfFolder('queued-run-20260102-120005-2'), 'queued-run');
  await runs.delete(dir);
  assert.deepEqual(readdirSync(root), [], 'folder and log removed');
  await assert.rejects(runs.delete(join(root, 'x')), /not a run folder|missing|no such/i);
});

test('a launcher that makes the run folder at submission (a queued Slurm job): start returns at once, pending', async () => {
  const root = join(scratch('run-control'), 'runs');
  const queued: Launcher = {
    async launch(request) {
      mkdirSync(request.runDir, { recursive: true });
      const log = join(request.runDir, 'trainer.log');
      writeFileSync(log, 'job 7 queued\n');
      const pending = pendingRunInfo({ id: 'p', name: request.name ?? '', createdAt: '', host: 'login', jobId: '7' });
      writeFileSync(join(request.runDir, 'run.json'), JSON.stringify(pending));
      return { pid: 7, log, running: async () => true, exitNote: async () => '' };
    },
    isAlive: async () => true,
    terminate: async () => undefined,
  };
  const runs = control(root, queued);
  const dir = await runs.start({ name: 'queued', preset: 'tiny', data: 'default', steps: 5 });
  assert.equal(readFileSync(join(dir, 'trainer.log'), 'utf8'), 'job 7 queued\n', "the job's log is kept");
  assert.deepEqual(readdirSync(root), [basename(dir)], 'nothing beside the run folder');
  const info = await runs.readInfo(dir);
  assert.deepEqual([info.status, info.slurm_job_id, info.name], ['pending', '7', 'queued']);
  assert.ok(isActiveStatus(info.status), 'a queued run is held: not resumed or deleted before it is stopped');
});
