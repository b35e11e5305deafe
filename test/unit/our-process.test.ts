// Stop Run signals only a process that is verifiably our trainer of that run: its command line
// (our CLI, train/resume, this run folder) and its start time (not after run.json's claim) are
// checked in /proc. A foreign run.json naming an unrelated process gets nothing signalled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RUN_FORMAT, type RunInfo } from '../../src/shared/run';
import { checkOurTrainer, claimedAt, parseCmdline, startTicks, trainerRunDir } from '../../src/shared/node/ourProcess';
import { isPidAlive } from '../../src/shared/node/pid';
import { LocalTarget } from '../../src/host/runs/localTarget';
import { scratch, sleep } from '../helpers';

const linux = process.platform === 'linux';

function runInfo(pid: number, createdAt: string, patch: Partial<RunInfo> = {}): RunInfo {
  return {
    format: RUN_FORMAT,
    id: 'r1',
    name: 'their run',
    createdAt,
    host: 'h',
    pid,
    status: 'running',
    step: 3,
    config: {} as RunInfo['config'],
    backend: { name: 'cpu', skipped: [] },
    data: { input: 'default', files: [] },
    resumes: [],
    exit: null,
    ...patch,
  };
}

function writeRun(dir: string, info: RunInfo): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'run.json'), JSON.stringify(info));
}

/** A process that lives until killed, started with `args` after node. */
async function longLived(args: string[], cwd: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd, stdio: 'ignore' });
  await new Promise((r) => child.once('spawn', r));
  return child;
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise((r) => child.once('exit', r));
}

test('trainerRunDir reads our CLI command lines and nothing else', () => {
  assert.equal(
    trainerRunDir(['node', '/x/dist/cli.js', 'train', '--preset', 'tiny', '--run-dir', 'runs/a'], '/w'),
    '/w/runs/a',
  );
  assert.equal(
    trainerRunDir(['node', '--enable-source-maps', '/x/dist/cli.js', 'train', '--run-dir=/r/a'], '/w'),
    '/r/a',
  );
  assert.equal(
    trainerRunDir(['node', '/x/dist/cli.js', 'sft', '--from', '/r/b/checkpoints/step-1', '--run-dir', 'ft'], '/w'),
    '/w/ft',
    'a fine-tuning run',
  );
  assert.equal(trainerRunDir(['/usr/bin/node', '/x/dist/cli.js', 'resume', '/r/a', '--steps', '9'], '/w'), '/r/a');
  assert.equal(trainerRunDir(['node', '/x/dist/cli.js', 'resume', '--steps', '9', 'b'], '/w'), '/w/b');
  assert.equal(trainerRunDir(['node', '/x/bin/steelscope.js', 'resume', '--checkpoint=/c', '/r/a'], '/w'), '/r/a');
  assert.equal(trainerRunDir(['node', '/x/dist/cli.js', 'serve', '/r/a'], '/w'), undefined, 'serve is not a trainer');
  assert.equal(trainerRunDir(['vim', '/r/a/run.json'], '/w'), undefined);
  assert.equal(trainerRunDir(['node', '/x/dist/cli.js', 'train', '--preset', 'tiny'], '/w'), undefined, 'no run dir');
  assert.deepEqual(parseCmdline('node\0/x/cli.js\0train\0'), ['node', '/x/cli.js', 'train']);
});

test('startTicks reads field 22 even when the command name holds spaces and parentheses', () => {
  const rest = Array.from({ length: 50 }, (_, i) => String(i + 3)).join(' ');
  assert.equal(startTicks(`123 (a) b (c) ${rest}`), 22);
  const info = runInfo(7, '2025-01-01T00:00:00Z', {
    resumes: [{ at: '2025-01-02T00:00:00Z', step: 5, pid: 7, checkpoint: 'c' }],
  });
  assert.equal(claimedAt(info), Date.parse('2025-01-02T00:00:00Z'), 'the resume that recorded this pid');
  assert.equal(claimedAt({ ...info, pid: 8 }), Date.parse('2025-01-01T00:00:00Z'));
});

test('checkOurTrainer: command line and start time decide', { skip: !linux && 'needs /proc' }, async () => {
  const root = scratch('our-process');
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(join(root, 'dist', 'cli.js'), 'setInterval(() => {}, 1000);\n');
  const runDir = join(root, 'runs', 'a');
  mkdirSync(runDir, { recursive: true });
  const fake = await longLived([join(root, 'dist', 'cli.js'), 'train', '--run-dir', 'runs/a'], root);
  try {
    const now = new Date().toISOString();
    assert.deepEqual(checkOurTrainer(runInfo(fake.pid!, now), runDir), { ours: true });
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    const reused = checkOurTrainer(runInfo(fake.pid!, hourAgo), runDir);
    assert.ok(
      !reused.ours && /reused pid/.test(reused.why),
      'a process started after run.json was written is not its trainer',
    );
    const other = checkOurTrainer(runInfo(fake.pid!, now), join(root, 'runs', 'b'));
    assert.ok(!other.ours && /another run folder/.test(other.why));
    const gone = checkOurTrainer(runInfo(2 ** 22 + 1, now), runDir);
    assert.ok(!gone.ours);
  } finally {
    fake.kill('SIGKILL');
    await exited(fake);
  }
});

test(
  'Stop Run on a foreign run.json naming an unrelated process signals nothing and says why',
  { skip: !linux && 'needs /proc' },
  async () => {
    const root = scratch('our-process-foreign');
    const runDir = join(root, 'runs', 'foreign');
    const victim = await longLived(['-e', 'setInterval(() => {}, 1000)'], root);
    try {
      writeRun(runDir, runInfo(victim.pid!, new Date().toISOString()));
      const target = new LocalTarget({
        runsRoot: join(root, 'runs'),
        nodePath: process.execPath,
        cliPath: '/nonexistent/cli.js',
      });
      await assert.rejects(
        target.stop(runDir),
        /Not stopping run their run: process \d+ is not a steelscope trainer.*Nothing was signalled/,
      );
      await sleep(200);
      assert.ok(isPidAlive(victim.pid!), 'the unrelated process is still alive');
      assert.equal(victim.signalCode, null);
    } finally {
      victim.kill('SIGKILL');
      await exited(victim);
    }
  },
);

test(
  'Stop Run after a reload: a verified trainer of this run gets its SIGTERM',
  { skip: !linux && 'needs /proc' },
  async () => {
    const root = scratch('our-process-verified');
    mkdirSync(join(root, 'dist'), { recursive: true });
    writeFileSync(join(root, 'dist', 'cli.js'), 'setInterval(() => {}, 1000);\n');
    const runDir = join(root, 'runs', 'mine');
    mkdirSync(runDir, { recursive: true });
    const trainer = await longLived([join(root, 'dist', 'cli.js'), 'resume', runDir, '--steps', '10'], root);
    try {
      writeRun(
        runDir,
        runInfo(trainer.pid!, new Date(Date.now() - 3_600_000).toISOString(), {
          resumes: [{ at: new Date().toISOString(), step: 2, pid: trainer.pid!, checkpoint: 'c' }],
        }),
      );
      // A new LocalTarget: it did not spawn the process (as after a window reload).
      const target = new LocalTarget({
        runsRoot: join(root, 'runs'),
        nodePath: process.execPath,
        cliPath: '/nonexistent/cli.js',
      });
      await target.stop(runDir);
      await exited(trainer);
      assert.equal(trainer.signalCode, 'SIGTERM');
    } finally {
      trainer.kill('SIGKILL');
      await exited(trainer);
    }
  },
);
