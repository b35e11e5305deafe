// The shipped poetry-mc task: built (npm run build), 400 scored questions in the CMMLU layout,
// each letter answering a quarter of each subject, and held out: no asked couplet is in the default corpus.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { builtAsset, defaultCorpusPath } from '../../src/core/data';
import { readMcTask } from '../../src/core/eval/tasks';

test('poetry-mc: two subjects of 200 questions, 5 dev examples each, none from the training corpus', () => {
  const dir = builtAsset('tasks/poetry-mc');
  assert.ok(dir, 'dist/tasks/poetry-mc is built');
  const task = readMcTask(dir);
  assert.equal(task.name, 'poetry-mc');
  assert.deepEqual(
    task.subjects.map((s) => [s.name, s.questions.length, s.dev.length]),
    [
      ['author', 200, 5],
      ['next_line', 200, 5],
    ],
  );
  const corpus = gunzipSync(readFileSync(defaultCorpusPath())).toString('utf8');
  for (const subject of task.subjects) {
    // Each letter answers a quarter: a model that always says one letter scores 25%, not more.
    const perLetter = [0, 1, 2, 3].map((l) => subject.questions.filter((q) => q.answer === l).length);
    assert.deepEqual(perLetter, [50, 50, 50, 50], `${subject.name}: answers per letter`);
    for (const q of [...subject.questions, ...subject.dev]) {
      const couplet = /「(.+)」/.exec(q.question)?.[1];
      assert.ok(couplet, q.question);
      assert.ok(!corpus.includes(couplet), `"${couplet}" is in the training corpus`);
      assert.equal(new Set(q.choices).size, 4, `four distinct choices: ${q.question}`);
    }
  }
});
