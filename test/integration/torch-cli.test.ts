// `steelscope train --engine torch` at its edges: without PyTorch it says what to install and
// writes nothing; Stop (SIGTERM to the supervisor run.json names) stops every rank after rank 0's
// checkpoint, and the run ends `stopped`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { poetrySubset, readEvents, runCli, scratch, sleep, SMALL_SETS, spawnCli, trainLosses } from '../helpers';
import { processesMentioning, torchFlags, TORCH_SKIP } from '../torch';

test('no Python with torch: one line saying what to install, exit code 2, nothing created', () => {
  const dir = scratch('torch-missing');
  const run = join(dir, 'run');
  const r = runCli([
    'train',
    '--engine',
    'torch',
    '--python',
    join(dir, 'no-such-python'),
    '--data',
    poetrySubset(dir, 50),
    '--run-dir',
    run,
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /No Python with PyTorch found.*Install PyTorch/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.ok(!existsSync(run), 'no run folder');
});

test('`steelscope prepare` writes what an engine trains from, once, and refuses a folder in use', () => {
  const dir = scratch('prepare');
  const run = join(dir, 'run');
  const r = runCli(['prepare', '--data', poetrySubset(dir, 100), '--run-dir', run, ...SMALL_SETS]);
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['tokenizer.json', 'data/train.bin', 'data/val.bin', 'data/prepared.json', 'data/prompts.json']) {
    assert.ok(existsSync(join(run, f)), f);
  }
  const prepared = JSON.parse(readFileSync(join(run, 'data', 'prepared.json'), 'utf8')) as {
    config: { seq_len: number };
    shards: unknown[];
  };
  assert.equal(prepared.config.seq_len, 32);
  assert.equal(prepared.shards.length, 2);
  const prompts = JSON.parse(readFileSync(join(run, 'data', 'prompts.json'), 'utf8')) as {
    prompts: { text: string; ids: number[] }[];
  };
  assert.deepEqual(
    prompts.prompts.map((p) => p.text),
    ['春', '秋夜\n', '山居\n王維\n'],
  );
  assert.ok(prompts.prompts.every((p) => p.ids.length > 0));
  const again = runCli(['prepare', '--data', poetrySubset(dir, 100), '--run-dir', run]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /not empty/);
});

test(
  'Stop: SIGTERM to the supervisor stops both ranks after rank 0 checkpoints; status stopped',
  { skip: TORCH_SKIP },
  async () => {
    const dir = scratch('torch-stop');
    const run = join(dir, 'run');
    const sets = [
      ...SMALL_SETS,
      '--set',
      'n_embd=128',
      '--set',
      'seq_len=128',
      '--set',
      'batch_size=8',
      '--set',
      'checkpoint_every=1000',
    ];
    const child = spawnCli([
      'train',
      '--data',
      poetrySubset(dir, 400),
      '--run-dir',
      run,
      '--steps',
      // Far more than the run can do before the SIGTERM sent at step 2 lands, however loaded the machine.
      '100000',
      ...sets,
      ...torchFlags(2),
    ]);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 120_000;
    while (Math.max(-1, ...trainLosses(run).keys()) < 2) {
      assert.ok(Date.now() < deadline, 'training started');
      await sleep(20);
    }
    const info = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { pid: number };
    assert.equal(info.pid, child.pid, 'run.json names the supervisor');
    process.kill(info.pid, 'SIGTERM');
    assert.equal(await exited, 0);
    const final = JSON.parse(readFileSync(join(run, 'run.json'), 'utf8')) as { status: string; step: number };
    assert.equal(final.status, 'stopped');
    assert.ok(final.step > 2 && final.step < 100_000, `stopped at step ${final.step}`);
    assert.ok(
      existsSync(join(run, 'checkpoints', `step-${String(final.step).padStart(8, '0')}`, 'DONE')),
      'checkpoint at the stop',
    );
    assert.ok(readEvents(run).some((e) => e.kind === 'stop'));
    assert.deepEqual(processesMentioning(run), [], 'no rank left running');
  },
);
