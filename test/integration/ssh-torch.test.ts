// Start Training with the PyTorch engine on an SSH host (the real sshd on 127.0.0.1): the host's
// torch is found over the connection, the engine is deployed with the CLI, torchrun runs 2
// processes there, records arrive through the follower, and Stop leaves a complete checkpoint and
// status `stopped`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { RunStore } from '../../src/host/runs/store';
import type { RemoteTarget } from '../../src/host/ssh/remoteTarget';
import { isPidAlive } from '../../src/shared/node/pid';
import { poetrySubset, scratch, SMALL_SETS, until as untilValue } from '../helpers';
import { sshdSkipReason, sshdTarget, TestSshd } from '../sshd';
import { processesMentioning, TORCH_SKIP } from '../torch';

const SETS = SMALL_SETS.filter((s) => s !== '--set');
const skip = sshdSkipReason() ?? TORCH_SKIP;

/** Polls every 50 ms, for up to 120_000 ms by default (see helpers.until). */
const until = <T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 120_000,
): Promise<T> => untilValue(what, probe, timeoutMs, 50);

/** The run's supervisor, torchrun and ranks: what mentions the run folder, less `steelscope follow`. */
function trainersOf(runDir: string): number[] {
  return processesMentioning(runDir).filter((pid) => {
    try {
      return !readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('follow');
    } catch {
      return false; // gone meanwhile
    }
  });
}

const runJson = (runDir: string) =>
  JSON.parse(readFileSync(join(runDir, 'run.json'), 'utf8')) as Record<string, unknown>;

describe('SSH host with PyTorch (real sshd on 127.0.0.1)', { skip }, () => {
  let sshd: TestSshd;
  let root: string;
  let target: RemoteTarget;
  let runDir: string | undefined;

  before(async () => {
    sshd = await TestSshd.start({ password: false });
    root = scratch('ssh-torch');
    mkdirSync(join(root, 'home'));
    target = sshdTarget(sshd, root, {
      alias: 'torch-sshd',
      startTimeoutMs: 180_000,
      follower: { initialBackoffMs: 100, maxBackoffMs: 1000 },
    });
  });

  after(async () => {
    if (runDir) for (const pid of processesMentioning(runDir)) if (isPidAlive(pid)) process.kill(pid, 'SIGKILL');
    target?.disconnect();
    await sshd?.stop();
  });

  test('torch found over SSH, 2 processes, records arrive, Stop leaves a checkpoint and status stopped', async () => {
    const search = await target.findTorch();
    assert.ok('found' in search, 'reason' in search ? search.reason : '');
    assert.equal(await target.findTorch(), await target.findTorch(), 'the probe is cached for the session');
    await target.deploy();
    assert.ok(
      existsSync(join(root, 'home', '.steelscope', 'test', 'engines', 'torch', 'main.py')),
      'the engine is deployed',
    );

    const data = poetrySubset(root, 300);
    const store = new RunStore({ flushMs: 20, pollMs: 250, aliveCheckMs: 300 });
    const engine = { name: 'torch' as const, nproc: 2, python: search.found.executable };
    runDir = await target.start({ name: 'torch over ssh', preset: 'tiny', data, steps: 100_000, sets: SETS, engine });
    const key = store.addRemoteRun(target, runDir, target.createFollower(runDir));
    const rows = () => store.get(key)?.tables.get('train')?.length ?? 0;
    await until('train records over SSH', () => rows() >= 12);
    const info = runJson(runDir);
    assert.deepEqual([info.engine, info.world_size, info.device], ['torch', 2, 'cpu']);
    assert.equal(store.get(key)?.summary.status, 'running');

    await target.stop(runDir);
    await until('status stopped', () => store.get(key)?.summary.status === 'stopped');
    const step = runJson(runDir).step;
    const folder = join(runDir, 'checkpoints', `step-${String(step).padStart(8, '0')}`);
    assert.ok(existsSync(join(folder, 'DONE')), `a complete checkpoint at the last step (${step})`);
    await until('the checkpoint in the store', () =>
      store.get(key)?.summary.checkpoints.some((c) => c.complete && c.step === step),
    );
    await until('every rank gone', () => trainersOf(runDir ?? '').length === 0, 60_000);
    assert.ok(readdirSync(join(runDir, 'checkpoints')).length >= 1);
    store.dispose();
  });
});
