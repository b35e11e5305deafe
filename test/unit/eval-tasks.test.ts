import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseCsv } from '../../src/core/eval/csv';
import { choiceTexts, fewShotPrompt, readMcTask } from '../../src/core/eval/tasks';
import type { RenderedTask } from '../../src/core/eval/render';
import { mcRecords } from '../../src/core/eval/run';
import { evalScore, evalTaskName, MACRO_SUBJECT, macroAverage, parseBestBy } from '../../src/shared/eval';
import { meanStderr } from '../../src/core/eval/score';

test('CSV: quoted fields keep commas, newlines and doubled quotes; CRLF and a BOM are read', () => {
  const text = '\ufeffa,b,c\r\n1,"x, y","line1\nline2"\r\n2,"say ""hi""",\n';
  assert.deepEqual(parseCsv(text), [
    ['a', 'b', 'c'],
    ['1', 'x, y', 'line1\nline2'],
    ['2', 'say "hi"', ''],
  ]);
});

test('CSV: an unclosed quote is one clear DataError', () => {
  assert.throws(() => parseCsv('a,b\n1,"open\n', 'bad.csv'), {
    name: 'DataError',
    message: /bad\.csv: a quoted field is never closed/,
  });
});

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'steelscope-eval-'));
}

test('C-Eval layout: val scored, dev gives shots, test without answers ignored, explanation column allowed', () => {
  const root = join(tempDir(), 'ceval');
  for (const split of ['dev', 'val', 'test']) mkdirSync(join(root, split), { recursive: true });
  const header = 'id,question,A,B,C,D,answer,explanation\n';
  writeFileSync(join(root, 'dev', 'law_dev.csv'), header + '0,"例題, 一",甲,乙,丙,丁,B,"因為\n如此"\n');
  writeFileSync(
    join(root, 'val', 'law_val.csv'),
    'id,question,A,B,C,D,answer\n0,問題,一,二,三,四,C\n1,問二,一,二,三,四,A\n',
  );
  writeFileSync(join(root, 'test', 'law_test.csv'), 'id,question,A,B,C,D\n0,無答,一,二,三,四\n');
  const task = readMcTask(root);
  assert.equal(task.name, 'ceval');
  assert.equal(task.subjects.length, 1);
  const [law] = task.subjects;
  assert.equal(law.name, 'law');
  assert.deepEqual(
    law.questions.map((q) => q.answer),
    [2, 0],
  );
  assert.equal(
    fewShotPrompt(law, law.questions[0], 5),
    '例題, 一\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案： B\n\n問題\nA. 一\nB. 二\nC. 三\nD. 四\n答案：',
  );
});

test('CMMLU layout: ,Question,A,B,C,D,Answer with dev/ and test/', () => {
  const root = join(tempDir(), 'cmmlu');
  for (const split of ['dev', 'test']) mkdirSync(join(root, split), { recursive: true });
  writeFileSync(join(root, 'dev', 'agronomy.csv'), ',Question,A,B,C,D,Answer\n0,例,a,b,c,d,D\n');
  writeFileSync(join(root, 'test', 'agronomy.csv'), ',Question,A,B,C,D,Answer\n0,"多\n行",a,b,c,d,A\n');
  writeFileSync(join(root, 'test', 'anatomy.csv'), ',Question,A,B,C,D,Answer\n0,q,a,b,c,d,B\n');
  const task = readMcTask(root);
  assert.deepEqual(
    task.subjects.map((s) => s.name),
    ['agronomy', 'anatomy'],
  );
  assert.equal(task.subjects[0].questions[0].question, '多\n行');
  assert.equal(task.subjects[0].dev.length, 1);
  assert.equal(task.subjects[1].dev.length, 0);
  assert.equal(
    fewShotPrompt(task.subjects[0], task.subjects[0].questions[0], 0),
    '多\n行\nA. a\nB. b\nC. c\nD. d\n答案：',
  );
});

test('a header without the choice columns, or an answer outside A-D, is one clear line', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'x.csv'), 'id,question,answer\n0,q,A\n');
  assert.throws(() => readMcTask(join(dir, 'x.csv')), {
    name: 'DataError',
    message: /header has no A, B, C, D column/,
  });
  writeFileSync(join(dir, 'y.csv'), ',Question,A,B,C,D,Answer\n0,q,a,b,c,d,E\n');
  assert.throws(() => readMcTask(join(dir, 'y.csv')), { message: /row 2: answer "E" is not one of A, B, C, D/ });
});

test('stderr is the sample standard error; the macro average combines subjects', () => {
  assert.ok(Math.abs(meanStderr([1, 0, 1, 0]) - Math.sqrt(1 / 3 / 4)) < 1e-12);
  const rec = (acc: number, stderr: number, n: number) => ({ step: 0, t: 0, task: 't', subject: 's', n, acc, stderr });
  const macro = macroAverage([rec(0.5, 0.1, 10), rec(0.3, 0.2, 20)]);
  assert.equal(macro.n, 30);
  assert.ok(Math.abs((macro.acc ?? 0) - 0.4) < 1e-12);
  assert.ok(Math.abs((macro.stderr ?? 0) - Math.sqrt(0.05) / 2) < 1e-12);
});

test('cloze format: the question alone, the answer text after the delimiter in each shot', () => {
  const subject = {
    name: 's',
    dev: [{ question: '例', choices: ['甲', '乙乙', '丙', '丁'] as [string, string, string, string], answer: 1 }],
    questions: [{ question: '問', choices: ['一', '二', '三', '四'] as [string, string, string, string], answer: 0 }],
  };
  assert.equal(fewShotPrompt(subject, subject.questions[0], 1, 'cloze'), '例\n答案： 乙乙\n\n問\n答案：');
  assert.deepEqual(choiceTexts(subject.questions[0], 'cloze'), ['一', '二', '三', '四']);
  assert.deepEqual(choiceTexts(subject.questions[0], 'letters'), ['A', 'B', 'C', 'D']);
});

/** A rendered task of one subject whose questions have the given choice lengths and answers. */
function rendered(questions: { lengths: number[]; answer: number }[], choices: 'letters' | 'cloze'): RenderedTask {
  const qs = questions.map((q) => ({ context: [1], choices: q.lengths.map(() => [2]), ...q }));
  return { kind: 'mc', task: 't', shots: 0, choices, subjects: [{ name: 's', questions: qs }] };
}

test('acc_norm divides each log-likelihood by its choice length (the harness rule); over letters it equals acc', () => {
  // Question 1: the long right answer (-6 over 6 characters) loses on the sum, wins per character.
  // Question 2: the short right answer wins on both.
  const task = rendered(
    [
      { lengths: [1, 6, 2, 2], answer: 1 },
      { lengths: [1, 6, 2, 2], answer: 0 },
    ],
    'cloze',
  );
  const scores = [
    [
      [-2, -6, -5, -5],
      [-1, -9, -5, -5],
    ],
  ];
  const [subject, macro] = mcRecords(task, scores, 40);
  assert.equal(subject.acc, 0.5);
  assert.equal(subject.acc_norm, 1);
  assert.equal(subject.acc_norm_stderr, 0);
  assert.ok(Math.abs((subject.stderr ?? 0) - 0.5) < 1e-12);
  assert.equal(macro.subject, MACRO_SUBJECT);
  assert.deepEqual([macro.acc, macro.acc_norm, macro.step, macro.format], [0.5, 1, 40, 'cloze']);
  const letters = rendered([{ lengths: [1, 1, 1, 1], answer: 2 }], 'letters');
  const [one] = mcRecords(letters, [[[-3, -2, -1, -4]]], 0);
  assert.deepEqual([one.acc, one.acc_norm], [1, 1]);
  assert.equal(one.stderr, undefined, 'no stderr of one question');
});

test('record task names and best_by: the metric, its direction, the macro record at that step', () => {
  assert.equal(evalTaskName({ task: 'poetry-mc' }), 'poetry-mc');
  assert.equal(evalTaskName({ task: 'poetry-mc', format: 'cloze' }), 'poetry-mc:cloze');
  assert.equal(evalTaskName({ task: '/data/ceval/val/law_val.csv' }), 'law');
  assert.equal(evalTaskName({ task: '/data/cmmlu/' }), 'cmmlu');
  assert.equal(evalTaskName({ task: 'ppl:/x/held.txt' }), 'ppl:held.txt');
  assert.deepEqual(parseBestBy('eval_loss'), { kind: 'eval_loss' });
  assert.deepEqual(parseBestBy('poetry-mc:cloze/acc_norm'), {
    kind: 'eval',
    task: 'poetry-mc:cloze',
    metric: 'acc_norm',
  });
  assert.match(String(parseBestBy('poetry-mc/f1')), /best_by must be "eval_loss" or "<task>\/<metric>"/);
  const rec = (step: number, acc: number, subject = MACRO_SUBJECT) => ({
    step,
    t: 0,
    task: 'poetry-mc',
    subject,
    n: 4,
    acc,
  });
  const records = [rec(200, 0.3), rec(200, 0.9, 'author'), rec(400, 0.5)];
  const by = { kind: 'eval', task: 'poetry-mc', metric: 'acc' } as const;
  assert.equal(evalScore(records, 200, by), -0.3, 'higher acc is better: negated so lower wins');
  assert.equal(evalScore(records, 600, by), null);
  assert.equal(evalScore([{ ...rec(5, 0), acc: undefined, ppl: 12 }], 5, { ...by, metric: 'ppl' }), 12);
});
