// Evaluate Checkpoint…'s runner (src/host/runs/evalJob.ts) on the real CLI, as the extension runs
// it on this machine: progress arrives line by line, the records land in the run's evals.jsonl and
// the tracker reads them; a bad task fails with the CLI's one line and writes nothing; a cancel
// stops the process before it writes anything.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnCli } from '../../src/host/runs/cliProcess';
import { EvalCancelled, resultLine, runEval } from '../../src/host/runs/evalJob';
import { LocalTarget } from '../../src/host/runs/localTarget';
import { RunStore } from '../../src/host/runs/store';
import { EVALS_FILE, MACRO_SUBJECT, type EvalProgress } from '../../src/shared/eval';
import { CLI, scratch, TEST_ENV, writeLongMcTask, writeScorableCheckpoint } from '../helpers';

const target = {
  runCli: async (args: string[], what: string) =>
    spawnCli({ nodePath: process.execPath, cliPath: CLI, env: TEST_ENV }, [...args, '--backend', 'cpu'], what),
};

test('poetry-mc through runEval: progress as it goes, the records in evals.jsonl, read by the tracker', async () => {
  const run = scratch('eval-job');
  const checkpoint = await writeScorableCheckpoint(run, 30);
  const progress: EvalProgress[] = [];
  const table = await runEval(
    target,
    { checkpoint, task: 'poetry-mc', shots: 1, limit: 4 },
    {
      onProgress: (p) => progress.push(p),
    },
  );
  assert.ok(progress.length >= 2, JSON.stringify(progress));
  assert.deepEqual(progress.at(-1), { step: 30, what: 'poetry-mc/next_line', done: 8, total: 8 });
  assert.ok(
    table.some((l) => /poetry-mc\s+\(average\)\s+8\s/.test(l)),
    table.join('\n'),
  );
  assert.match(
    resultLine(table),
    /^poetry-mc: accuracy \d\.\d{4} ± \d\.\d{4}, 95% \[-?\d\.\d{3}, \d\.\d{3}\] \(n 8\)$/,
  );
  const store = new RunStore({ flushMs: 1, aliveCheckMs: 0 });
  try {
    const key = store.addRun(new LocalTarget({ runsRoot: run, nodePath: process.execPath, cliPath: CLI }), run);
    await store.whenIdle();
    assert.deepEqual(
      store.get(key)?.evals.map((r) => [r.step, r.task, r.subject, r.n]),
      [
        [30, 'poetry-mc', 'author', 4],
        [30, 'poetry-mc', 'next_line', 4],
        [30, 'poetry-mc', MACRO_SUBJECT, 8],
      ],
    );
  } finally {
    store.dispose();
  }
});

test('a task the CLI refuses fails with its one line, and nothing is written', async () => {
  const run = scratch('eval-job-bad');
  const checkpoint = await writeScorableCheckpoint(run);
  const bad = join(run, 'bad.csv');
  writeFileSync(bad, ',Question,A,B,C\n0,問,甲,乙,丙\n');
  await assert.rejects(
    runEval(target, { checkpoint, task: bad, shots: 0 }),
    (err: Error) => !err.message.includes('\n') && /bad\.csv/.test(err.message) && !/at /.test(err.message),
  );
  await assert.rejects(runEval(target, { checkpoint: join(run, 'nowhere'), task: 'poetry-mc', shots: 0 }), /nowhere/);
  assert.equal(existsSync(join(run, EVALS_FILE)), false);
});

test('cancelled at its first progress line: the process ends and writes nothing', async () => {
  const run = scratch('eval-job-cancel');
  const checkpoint = await writeScorableCheckpoint(run);
  // A task of minutes, not poetry-mc's seconds: the cancel must reach an eval still scoring.
  const task = writeLongMcTask(join(run, 'task'));
  const abort = new AbortController();
  await assert.rejects(
    runEval(target, { checkpoint, task, shots: 5 }, { signal: abort.signal, onProgress: () => abort.abort() }),
    EvalCancelled,
  );
  assert.equal(existsSync(join(run, EVALS_FILE)), false, 'no records from a cancelled eval');
});
