// LocalTarget with REAL trainers (`node dist/cli.js`): started detached, observed through the
// RunStore, stopped with a final checkpoint, surviving the process that started them, reported
// stale when killed, and a usage error surfacing the CLI's own message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseRunInfo, type RunInfo } from '../../src/shared/run';
import { isPidAlive } from '../../src/shared/node/pid';
import { LocalTarget } from '../../src/host/runs/localTarget';
import { slugify } from '../../src/host/runs/runControl';
import { findOnPath, resolveNodePath } from '../../src/host/runs/nodePath';
import { RunStore } from '../../src/host/runs/store';
import type { RunDisplayStatus } from '../../src/host/runs/types';
import { CLI, poetrySubset, ROOT, scratch, sleep, SMALL_SETS, TEST_ENV } from '../helpers';

const SETS = SMALL_SETS.filter((s) => s !== '--set');

function localTarget(runsRoot: string): LocalTarget {
  return new LocalTarget({
    runsRoot,
    nodePath: resolveNodePath(undefined),
    cliPath: CLI,
    env: TEST_ENV,
    startTimeoutMs: 60_000,
  });
}

function readInfo(runDir: string): RunInfo {
  const info = parseRunInfo(JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')));
  assert.ok(info.ok, info.ok ? '' : info.error);
  return info.value;
}

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Kills a trainer a failed test left running. */
function reap(runDir: string): void {
  try {
    const { pid } = readInfo(runDir);
    if (isPidAlive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // no run.json: nothing to reap
  }
}

test('start → store sees train records → stop: status stopped with a final checkpoint; then resume and delete', async () => {
  const root = scratch('local-target');
  const data = poetrySubset(root, 300);
  const target = localTarget(join(root, 'runs'));
  const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 200 });
  const runDir = await target.start({ name: '春 run', preset: 'tiny', data, steps: 100_000, sets: SETS });
  try {
    assert.ok(existsSync(join(runDir, 'run.json')), 'start resolves once run.json exists');
    assert.equal(dirname(runDir), join(root, 'runs'));
    assert.match(basename(runDir), /^春-run-\d{8}-\d{6}$/);
    assert.ok(existsSync(join(runDir, 'trainer.log')), 'the log moved into the run folder');
    assert.deepEqual(await target.listRunDirs(), [runDir]);

    const key = store.addRun(target, runDir);
    await until('train records in the store', () => (store.get(key)?.tables.get('train')?.length ?? 0) >= 3);
    assert.equal(store.get(key)?.summary.status, 'running');
    assert.equal(store.get(key)?.summary.name, '春 run');
    await assert.rejects(target.delete(runDir), /still running/);

    await target.stop(runDir);
    await assert.rejects(
      target.stop(runDir),
      /already requested|not running/,
      'a second SIGTERM would skip the checkpoint',
    );
    await until('status stopped', () => store.get(key)?.summary.status === 'stopped');
    await until('the final checkpoint', () => {
      const summary = store.get(key)?.summary;
      return summary?.checkpoints.some((c) => c.complete && c.step === readInfo(runDir).step);
    });
    assert.ok(store.get(key)?.events.some((e) => e.kind === 'stop'));
    await assert.rejects(target.stop(runDir), /not running/);

    const stoppedAt = readInfo(runDir).step;
    await target.resume(runDir, { steps: stoppedAt + 5 });
    await until('the resumed run to finish', () => store.get(key)?.summary.status === 'finished');
    assert.equal(store.get(key)?.summary.lastStep, stoppedAt + 5);
    const train = store.get(key)?.tables.get('train');
    assert.equal(train?.step[train.length - 1], stoppedAt + 4, 'the train record of the last update');
    assert.equal(readInfo(runDir).resumes.length, 1);
  } finally {
    reap(runDir);
    store.dispose();
  }
  await target.delete(runDir);
  assert.ok(!existsSync(runDir));
});

test('the trainer outlives the process that started it', async () => {
  const root = scratch('local-orphan');
  const data = poetrySubset(root, 300);
  const runsRoot = join(root, 'runs');
  const script = join(root, 'starter.ts');
  const targetModule = join(ROOT, 'src', 'host', 'runs', 'localTarget.ts');
  writeFileSync(
    script,
    `
    import { LocalTarget } from ${JSON.stringify(targetModule)};
    const target = new LocalTarget({ runsRoot: ${JSON.stringify(runsRoot)}, nodePath: ${JSON.stringify(resolveNodePath(undefined))}, cliPath: ${JSON.stringify(CLI)} });
    target.start({ preset: 'tiny', data: ${JSON.stringify(data)}, steps: 40, sets: ${JSON.stringify(SETS)} }).then((dir) => {
      process.stdout.write(dir);
      process.exit(0); // at once: the trainer must not care
    });
  `,
  );
  // STEELSCOPE_THREADS (what the steelscope.threads setting sets) reaches the trainer through the target's environment.
  const env = { ...TEST_ENV, STEELSCOPE_THREADS: '1' };
  const starter = spawnSync(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(starter.status, 0, starter.stderr);
  const runDir = starter.stdout.trim();
  try {
    assert.equal(basename(dirname(runDir)), 'runs');
    const info = await until('the run to finish', () => {
      const current = readInfo(runDir);
      return current.status === 'finished' || current.status === 'failed' ? current : undefined;
    });
    assert.equal(info.status, 'finished', readFileSync(join(runDir, 'trainer.log'), 'utf8'));
    assert.equal(info.step, 40);
    assert.ok(existsSync(join(runDir, 'checkpoints', 'step-00000040', 'DONE')));
    assert.match(info.backend.kernels ?? '', /, 1 thread\b/, 'run.json says which kernels ran, on how many threads');
  } finally {
    reap(runDir);
  }
});

test('a trainer killed with SIGKILL is reported stale', async () => {
  const root = scratch('local-stale');
  const data = poetrySubset(root, 300);
  const target = localTarget(join(root, 'runs'));
  const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 100 });
  const runDir = await target.start({ preset: 'tiny', data, steps: 100_000, sets: SETS });
  try {
    const key = store.addRun(target, runDir);
    await until('running', () => store.get(key)?.summary.status === 'running');
    process.kill(readInfo(runDir).pid, 'SIGKILL');
    const seen: RunDisplayStatus = await until(
      'stale',
      () => (store.get(key)?.summary.status === 'stale' ? 'stale' : undefined),
      10_000,
    );
    assert.equal(seen, 'stale');
    assert.equal(readInfo(runDir).status, 'running', 'run.json itself cannot say so');
    await assert.rejects(target.stop(runDir), /not running/);
  } finally {
    reap(runDir);
    store.dispose();
  }
});

test('a usage error rejects start() with the CLI message and leaves nothing behind', async () => {
  const root = scratch('local-usage');
  const data = poetrySubset(root, 50);
  const runsRoot = join(root, 'runs');
  const target = localTarget(runsRoot);
  await assert.rejects(target.start({ preset: 'tiny', data, steps: 10, sets: ['no_such_key=3'] }), (err: Error) => {
    assert.match(err.message, /exited with code 2 before the run started/);
    assert.match(err.message, /no_such_key/);
    return true;
  });
  assert.deepEqual(await target.listRunDirs(), []);
  assert.equal(
    existsSync(runsRoot) ? spawnSync('ls', ['-A', runsRoot], { encoding: 'utf8' }).stdout.trim() : '',
    '',
    'no log or folder left',
  );
});

test('node is found on PATH, never assumed; slugs keep Chinese names', () => {
  const bin = scratch('path');
  const fake = join(bin, 'node');
  mkdirSync(bin, { recursive: true });
  writeFileSync(fake, '#!/bin/sh\n');
  chmodSync(fake, 0o755);
  writeFileSync(join(bin, 'not-executable'), '');
  assert.equal(findOnPath('node', { PATH: `/nonexistent:${bin}` }), fake);
  assert.equal(findOnPath('not-executable', { PATH: bin }), undefined);
  assert.throws(() => resolveNodePath(undefined, { PATH: '/nonexistent' }), /steelscope\.nodePath/);
  assert.equal(resolveNodePath(fake, {}), fake);
  assert.throws(() => resolveNodePath(join(bin, 'missing'), {}), /not an executable file/);
  assert.equal(slugify('唐詩 Small/run #1'), '唐詩-small-run-1');
  assert.equal(slugify('///'), 'run');
});
