// The editor's side of evals.jsonl (src/shared/eval.ts): the progress line the CLI writes and the
// extension reads back, a re-evaluation superseding an earlier score, and the 95% interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkpointScores,
  evalProgressLine,
  interval95,
  latestScores,
  parseEvalProgress,
  scoreText,
  type EvalRecord,
} from '../../src/shared/eval';

test('a progress line reads back as what was written, whatever the task is called; other lines are not progress', () => {
  for (const p of [
    { step: 1200, what: 'poetry-mc/author', done: 37, total: 400 },
    { step: 0, what: 'ppl val set.txt', done: 3, total: 3 },
    { step: 7, what: 'ceval/高中_語文', done: 1, total: 1000 },
  ])
    assert.deepEqual(parseEvalProgress(evalProgressLine(p)), p);
  assert.equal(evalProgressLine({ step: 5, what: 'x', done: 1, total: 3 }), 'eval step 5: x 1/3 (33%)');
  for (const line of ['steelscope: Task file x.csv has no column D.', 'eval step x: a 1/2 (50%)', ''])
    assert.equal(parseEvalProgress(line), undefined, line);
});

test('a step, task and subject evaluated again keeps only its newest score; checkpointScores are its averages by task', () => {
  const r = (step: number, task: string, subject: string, acc: number): EvalRecord => ({
    step,
    t: 0,
    task,
    subject,
    n: 10,
    acc,
  });
  const records = [
    r(20, 'b', '_average', 0.1),
    r(10, 'a', '_average', 0.2),
    r(20, 'a', 's', 0.3),
    r(20, 'b', '_average', 0.4),
  ];
  assert.deepEqual(
    latestScores(records).map((x) => [x.step, x.task, x.subject, x.acc]),
    [
      [10, 'a', '_average', 0.2],
      [20, 'b', '_average', 0.4],
      [20, 'a', 's', 0.3],
    ],
  );
  assert.deepEqual(checkpointScores(records, 20).map(scoreText), ['b 40.0%']);
  assert.deepEqual(interval95(0.5, 0.1), [0.5 - 0.196, 0.5 + 0.196]);
  assert.deepEqual(interval95(0.05, 0.1), [0, 0.05 + 0.196], 'clamped to [0, 1]');
  assert.equal(interval95(0.5, undefined), undefined);
});
