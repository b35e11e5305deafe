// The config's eval_tasks in a TF.js training run: the tasks run at step 0 and before every
// checkpoint, their records appended to evals.jsonl with the step (the shape `steelscope eval`
// writes), and best_by ranks checkpoints by a task metric when it names one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MACRO_SUBJECT } from '../../src/shared/eval';
import { scanCheckpoints } from '../../src/shared/node/checkpoints';
import { readEvalRecords, scratch, trainWithEvalTasks, writeCmmluTask } from '../helpers';

/** A CMMLU-layout task of one subject: 3 questions and a dev example. */
function smallTask(root: string): string {
  return writeCmmluTask(root, 'quiz', {
    'dev/poems.csv': ['0,春眠不覺曉的下一句？,處處聞啼鳥,夜來風雨聲,花落知多少,白日依山盡,A'],
    'test/poems.csv': [
      '1,床前明月光的下一句？,疑是地上霜,舉頭望明月,低頭思故鄉,春眠不覺曉,A',
      '2,問二,甲,乙,丙,丁,B',
      '3,問三,甲,乙,丙,丁,C',
    ],
  });
}

test('train runs eval_tasks at step 0 and each checkpoint; evals.jsonl holds their records; best_by ranks', async () => {
  const dir = scratch('train-evals');
  const task = smallTask(dir);
  const tasks = JSON.stringify([
    { task, shots: 1 },
    { task, shots: 0, format: 'cloze' },
  ]);
  const { runDir, result: r } = trainWithEvalTasks(dir, tasks, 'quiz:cloze/acc_norm');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout + r.stderr, /step 2: quiz acc \d\.\d{4}/);
  const records = readEvalRecords(runDir);
  const macros = records.filter((x) => x.subject === MACRO_SUBJECT);
  assert.deepEqual(
    macros.map((x) => [x.step, x.task, x.n, x.shots, x.format]),
    [0, 2, 4].flatMap((step) => [
      [step, 'quiz', 3, 1, 'letters'],
      [step, 'quiz:cloze', 3, 0, 'cloze'],
    ]),
  );
  for (const x of records) assert.ok(x.acc !== undefined && x.acc_norm !== undefined && x.stderr !== undefined);
  // The checkpoint kept beside the newest is the best by quiz:cloze's acc_norm (the earliest on a tie).
  const checkpoints = await scanCheckpoints(runDir);
  const score = (step: number) => macros.find((x) => x.step === step && x.task === 'quiz:cloze')?.acc_norm ?? NaN;
  const bestStep = score(2) >= score(4) ? 2 : 4;
  assert.deepEqual(
    checkpoints.filter((c) => c.best).map((c) => c.step),
    [bestStep],
  );
  assert.deepEqual(
    checkpoints.map((c) => c.step),
    bestStep === 2 ? [2, 4] : [4],
  );
});
