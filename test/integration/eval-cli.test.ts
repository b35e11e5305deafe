// `steelscope eval` end to end on a checkpoint written by the core's own writer: a CMMLU-layout
// task folder is scored, the table printed, and evals.jsonl gets one record per subject plus the
// macro average; bad input is one line and exit code 2.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MACRO_SUBJECT } from '../../src/shared/eval';
import { readEvalRecords, runCli, scratch, writeCmmluTask, writeScorableCheckpoint } from '../helpers';

/** A run folder holding one checkpoint (no run.json: eval is given the checkpoint folder); returns both. */
async function fixtureRun(): Promise<{ run: string; checkpoint: string }> {
  const run = scratch('eval-cli');
  return { run, checkpoint: await writeScorableCheckpoint(run) };
}

function cmmluTask(root: string): string {
  return writeCmmluTask(root, 'mytask', {
    'dev/poems.csv': ['0,"春眠不覺曉，下一句？",處處聞啼鳥,夜來風雨聲,花落知多少,白日依山盡,A'],
    'test/poems.csv': ['1,問一,甲,乙,丙,丁,A', '2,"問二, 有逗號",甲,乙,丙,丁,B', '3,"問三\n兩行",甲,乙,丙,丁,C'],
    'test/other.csv': ['0,問,甲,乙,丙,丁,D'],
  });
}

test('eval scores a task folder and appends subject and average records to evals.jsonl', async () => {
  const { run, checkpoint } = await fixtureRun();
  const task = cmmluTask(run);
  const r = runCli(['eval', checkpoint, '--task', task, '--shots', '1', '--backend', 'cpu']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /mytask\s+poems\s+3\s/);
  assert.match(r.stdout, /mytask\s+\(average\)\s+4\s/);
  assert.match(r.stderr, /eval step 7: mytask\/poems/);
  const records = readEvalRecords(run);
  assert.deepEqual(
    records.map((x) => [x.step, x.task, x.subject, x.n]),
    [
      [7, 'mytask', 'other', 1],
      [7, 'mytask', 'poems', 3],
      [7, 'mytask', MACRO_SUBJECT, 4],
    ],
  );
  for (const x of records) assert.ok(x.acc !== undefined && x.acc >= 0 && x.acc <= 1);
  const macro = records[2];
  assert.equal(macro.acc, ((records[0].acc ?? 0) + (records[1].acc ?? 0)) / 2);
  // Scored over letters, acc_norm is acc (the harness reports both), and the records say how they were scored.
  for (const x of records) assert.deepEqual([x.acc_norm, x.shots, x.format], [x.acc, 1, 'letters']);
  const cloze = runCli(['eval', checkpoint, '--task', task, '--format', 'cloze', '--shots', '0', '--backend', 'cpu']);
  assert.equal(cloze.code, 0, cloze.stderr);
  assert.match(cloze.stdout, /mytask:cloze\s+\(average\)\s+4\s/);
  const last = JSON.parse(readFileSync(join(run, 'evals.jsonl'), 'utf8').trim().split('\n').pop() ?? '{}') as {
    task: string;
    format: string;
    acc_norm?: number;
  };
  assert.deepEqual([last.task, last.format, typeof last.acc_norm], ['mytask:cloze', 'cloze', 'number']);
});

test('eval: a task CSV without choice columns is one line and exit code 2; nothing is written', async () => {
  const { run, checkpoint } = await fixtureRun();
  writeFileSync(join(run, 'bad.csv'), 'id,question,answer\n0,q,A\n');
  const r = runCli(['eval', checkpoint, '--task', join(run, 'bad.csv')]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /header has no A, B, C, D column/);
  assert.throws(() => readFileSync(join(run, 'evals.jsonl')));
});
