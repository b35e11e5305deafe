// Fine-tuning on both engines from the same checkpoint: `steelscope sft` on the TensorFlow.js
// engine and with --engine torch (this core renders the conversations in ChatML and writes their
// ids and loss mask; the PyTorch engine trains on them) see the same rows in the same seeded order
// from the same weights, so the losses agree within 1e-3 relative at every step. The torch run
// records its base checkpoint and the ChatML template, as the TF.js one does, and takes a Slurm
// job's pending run.json. Two processes (DDP, each rank half of every batch's rows) give the same
// losses: the mask's mean is over the whole batch. A torch fine-tuning run stopped half-way resumes
// exactly (its lost rows shard rendered again), with its eval tasks at step 0 and each checkpoint.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { pendingRunInfo } from '../../src/shared/run';
import { join } from 'node:path';
import { assertSftResumedExactly, poetrySubset, runCli, scratch, sftStoppedAndResumed, trainLosses } from '../helpers';
import { torchFlags, TORCH_SKIP } from '../torch';

const STEPS = 8;
const SMALL = ['n_layer=2', 'n_embd=64', 'n_head=4', 'n_kv_head=2', 'intermediate_size=128', 'vocab_size=512'];
const QUIET = ['eval_every=0', 'sample_every=0', 'checkpoint_every=0', 'batch_size=4'];
const sets = (list: string[]) => list.flatMap((s) => ['--set', s]);

test(
  'sft, 8 steps from one checkpoint: torch losses (1 and 2 processes) equal the TF.js engine losses within 1e-3 relative',
  {
    skip: TORCH_SKIP,
  },
  (t) => {
    const dir = scratch('torch-sft');
    const base = join(dir, 'base');
    const trained = runCli(
      ['train', '--data', poetrySubset(dir, 300), '--run-dir', base, '--steps', '2', ...sets([...SMALL, ...QUIET])],
      300_000,
    );
    assert.equal(trained.code, 0, trained.stderr);
    const from = join(base, 'checkpoints', 'step-00000002');
    const common = ['sft', '--from', from, '--data', 'poetry-sft', '--steps', String(STEPS), ...sets(QUIET)];
    const tfjs = runCli([...common, '--run-dir', join(dir, 'tfjs')], 300_000);
    assert.equal(tfjs.code, 0, tfjs.stderr);
    // The 1-process run as a Slurm job's: it takes the pending run.json written at submission.
    mkdirSync(join(dir, 'torch'));
    const pending = pendingRunInfo({ id: 'p', name: 'torch', createdAt: '', host: 'login', jobId: '77' });
    writeFileSync(join(dir, 'torch', 'run.json'), JSON.stringify(pending));
    const torch = runCli([...common, '--run-dir', join(dir, 'torch'), ...torchFlags(1)], 300_000, {
      SLURM_JOB_ID: '77',
    });
    assert.equal(torch.code, 0, torch.stderr);
    const ddp = runCli([...common, '--run-dir', join(dir, 'ddp'), ...torchFlags(2)], 300_000);
    assert.equal(ddp.code, 0, ddp.stderr);

    const expected = trainLosses(join(dir, 'tfjs'));
    const actual = trainLosses(join(dir, 'torch'));
    assert.equal(actual.size, STEPS);
    let worst = 0;
    for (const [name, losses] of [
      ['torch', actual],
      ['torch, 2 processes', trainLosses(join(dir, 'ddp'))],
    ] as const) {
      for (const [step, loss] of expected) {
        const got = losses.get(step);
        assert.ok(got !== undefined, `${name} has no loss for step ${step}`);
        const rel = Math.abs(got - loss) / Math.abs(loss);
        worst = Math.max(worst, rel);
        assert.ok(rel <= 1e-3, `step ${step}: ${name} ${got} vs tfjs ${loss} (relative ${rel.toExponential(2)})`);
      }
    }
    // Two processes against one: only the order of float sums differs, so far closer than 1e-3; a mean
    // over each rank's own mask (not the batch's) would differ by about 5e-4 here.
    for (const [step, loss] of actual) {
      const rel = Math.abs((trainLosses(join(dir, 'ddp')).get(step) ?? NaN) - loss) / loss;
      assert.ok(rel <= 1e-5, `step ${step}: 2 processes differ from 1 by ${rel.toExponential(2)} relative`);
    }
    const run = JSON.parse(readFileSync(join(dir, 'torch', 'run.json'), 'utf8'));
    assert.equal(run.engine, 'torch');
    assert.equal(run.slurm_job_id, '77');
    assert.equal(run.template, 'chatml');
    assert.deepEqual(
      run.base_checkpoint,
      JSON.parse(readFileSync(join(dir, 'tfjs', 'run.json'), 'utf8')).base_checkpoint,
    );
    assert.equal(run.base_checkpoint.step, 2);
    assert.equal(run.status, 'finished');
    t.diagnostic(
      `largest relative loss difference: ${worst.toExponential(2)}; losses ${[...actual.values()].join(', ')}`,
    );
  },
);

test(
  'torch sft stopped at step 4 of 8 and resumed: the uninterrupted losses, evals at 0/4/8 once, best_by pruning',
  { skip: TORCH_SKIP },
  async () => {
    const dir = scratch('torch-sft-resume');
    const base = join(dir, 'base');
    const data = poetrySubset(dir, 200);
    const trained = runCli(['train', '--data', data, '--run-dir', base, '--steps', '1', ...sets([...SMALL, ...QUIET])]);
    assert.equal(trained.code, 0, trained.stderr);
    // A lost shard of rows: the resume renders it again from the (unchanged) chat file, the same ids.
    const loseShard = (runDir: string) => rmSync(join(runDir, 'data', 'sft.bin'));
    const run = sftStoppedAndResumed(dir, join(base, 'checkpoints', 'step-00000001'), torchFlags(1), loseShard);
    // Within 1e-5, as the TF.js engine's sft resume: not bitwise equal. In CI a resumed torch sft
    // run once differed from the uninterrupted one by 9.5e-7 at step 5 (6.2513037 vs 6.2513046,
    // a few float32 ulps; it passed many times before), so torch on CPU is not bitwise reproducible
    // across these processes. A wrong row, mask, cursor or schedule moves the loss far more.
    await assertSftResumedExactly(run, 1e-5);
  },
);
