// Hugging Face trainer_state.json (log_history): training, eval and summary entries become points
// of their tables; the newest of the output folder's and checkpoint-N/'s files is read; entries
// already handed out are not handed out again; a history that changed starts over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TrainerStateReader } from '../../src/shared/node/formats/trainerState';
import { fold, points } from '../formats/fixtures';
import { scratch } from '../helpers';

// Shaped like transformers' TrainerState.save_to_json (json.dumps(indent=2, sort_keys=True)).
function state(globalStep: number, history: object[]): string {
  return JSON.stringify(
    { best_metric: null, epoch: 1, global_step: globalStep, log_history: history, max_steps: 30 },
    null,
    2,
  ).replace('"grad_norm": "NaN"', '"grad_norm": NaN');
}
const LOG = [
  { epoch: 0.33, grad_norm: 1.5, learning_rate: 5e-5, loss: 2.75, step: 10 },
  { epoch: 0.33, eval_loss: 2.5, eval_runtime: 0.5, eval_samples_per_second: 200, step: 10 },
  { epoch: 0.67, grad_norm: 'NaN', learning_rate: 2.5e-5, loss: 2.25, step: 20 },
];

function checkpoint(dir: string, step: number, history: object[]): void {
  mkdirSync(join(dir, `checkpoint-${step}`), { recursive: true });
  writeFileSync(join(dir, `checkpoint-${step}`, 'trainer_state.json'), state(step, history));
}

test('log_history from the newest checkpoint: loss, learning_rate, grad_norm, eval_* as points', async () => {
  const dir = scratch('hf-state');
  checkpoint(dir, 10, LOG.slice(0, 2));
  checkpoint(dir, 20, LOG);
  const reader = new TrainerStateReader(dir);
  const folded = fold([await reader.read()]);
  assert.deepEqual(points(folded), {
    'train:epoch': [
      [10, 0.33],
      [20, 0.67],
    ],
    'train:grad_norm': [[10, 1.5]],
    'train:learning_rate': [
      [10, 5e-5],
      [20, 2.5e-5],
    ],
    'train:loss': [
      [10, 2.75],
      [20, 2.25],
    ],
    'eval:epoch': [[10, 0.33]],
    'eval:eval_loss': [[10, 2.5]],
    'eval:eval_runtime': [[10, 0.5]],
    'eval:eval_samples_per_second': [[10, 200]],
  });
  assert.ok(folded.tables.get('train')?.loggedNaN.get('grad_norm')?.has(1), "Python's NaN is a logged NaN");

  // The next checkpoint: only the new entries are handed out; an unchanged folder hands out nothing.
  assert.equal((await reader.read()).metrics.length, 0);
  const more = [
    ...LOG,
    { epoch: 1, learning_rate: 0, loss: 2, step: 30 },
    { step: 30, train_runtime: 12.5, train_loss: 2.3, epoch: 1 },
  ];
  writeFileSync(join(dir, 'trainer_state.json'), state(30, more));
  const batch = await reader.read();
  assert.equal(batch.reset, false);
  assert.equal(batch.metrics.length, 2);
  fold([batch], folded);
  assert.deepEqual(points(folded)['train:loss'], [
    [10, 2.75],
    [20, 2.25],
    [30, 2],
  ]);
  assert.deepEqual(points(folded)['summary:train_runtime'], [[30, 12.5]]);
});

test('a history that no longer starts with what was read starts over', async () => {
  const dir = scratch('hf-restart');
  writeFileSync(join(dir, 'trainer_state.json'), state(20, LOG));
  const reader = new TrainerStateReader(dir);
  const folded = fold([await reader.read()]);
  writeFileSync(join(dir, 'trainer_state.json'), state(10, [{ loss: 9, step: 10, learning_rate: 1, epoch: 0.1 }]));
  const batch = await reader.read();
  assert.ok(batch.reset);
  fold([batch], folded);
  assert.deepEqual(points(folded)['train:loss'], [[10, 9]]);
});

test('a half-written file is read again once complete; a folder without one reads nothing', async () => {
  const dir = scratch('hf-half');
  const reader = new TrainerStateReader(dir);
  assert.equal((await reader.read()).metrics.length, 0);
  writeFileSync(join(dir, 'trainer_state.json'), state(20, LOG).slice(0, 100));
  assert.equal((await reader.read()).metrics.length, 0);
  writeFileSync(join(dir, 'trainer_state.json'), state(20, LOG));
  assert.equal(fold([await reader.read()]).tables.get('train')?.length, 2);
});
