// Issue 17's end-to-end scenario in a real VS Code: a finished run (trained by the CLI into the runs
// folder before the workbench opens, a few seconds), then "Steelscope: Evaluate Checkpoint…" from
// the palette: the run, its checkpoint, the shipped poetry-mc task, 5 shots. The eval runs with its
// progress in a notification; its result is announced; the dashboard's Evals section shows the
// score that evals.jsonl holds, and the checkpoint's line in the Runs view says it too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EVALS_FILE, MACRO_SUBJECT, type EvalRecord } from '../../src/shared/eval';
import { e2eSkip, eventually, trainWithCli, withVSCode } from './harness';

const RUN = 'eval-run';

test(
  'Evaluate Checkpoint… from the palette: progress in a notification, then the Evals section shows the score',
  { skip: e2eSkip(), timeout: 300_000 },
  async () => {
    await withVSCode({ name: 'evaluate' }, async (vs) => {
      const runDir = trainWithCli(vs, RUN, { steps: 20 });

      await vs.openWorkbench();
      await vs.recordToasts();
      await vs.runCommand('Steelscope: Evaluate Checkpoint…');
      await vs.answerPrompts([
        { title: /^Evaluate Checkpoint: pick a run$/, answer: RUN },
        { title: new RegExp(`^Evaluate Checkpoint: ${RUN}$`), answer: /^step 20\b/ },
        { title: /^Evaluate Checkpoint: task$/, answer: /poetry-mc/ },
        { title: /^Evaluate Checkpoint: shots$/, answer: { type: '5' } },
      ]);
      const done = await vs.notificationText(/step 20 · poetry-mc: accuracy/, 240_000);
      const progress = (await vs.toastsSeen()).filter((t) =>
        /evaluating eval-run step 20 on poetry-mc.*poetry-mc\/(author|next_line) \d+\/400/.test(t),
      );
      assert.ok(progress.length >= 1, `progress shown: ${JSON.stringify(await vs.toastsSeen())}`);
      await vs.screenshot('done');

      // What the CLI appended is what the dashboard shows.
      const records = readFileSync(join(runDir, EVALS_FILE), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as EvalRecord);
      const average = records.find((r) => r.subject === MACRO_SUBJECT && r.step === 20 && r.task === 'poetry-mc');
      assert.ok(average?.acc !== undefined, JSON.stringify(records));
      const pct = `${(100 * average.acc).toFixed(1)}%`;
      assert.match(done, new RegExp(`${average.acc.toFixed(4)}`), done);

      await vs.runCommand('Steelscope: Open Dashboard');
      await vs.pickItem(RUN);
      const dash = await vs.webviewWhenOpen(RUN, 60_000);
      const section = dash.locator('.evals');
      await section.waitFor({ state: 'visible', timeout: 60_000 });
      const averageRow = section.locator('vscode-data-grid-row').filter({ hasText: '(average)' });
      await averageRow.waitFor({ state: 'visible' });
      const cells = (await averageRow.locator('vscode-data-grid-cell').allTextContents()).map((t) => t.trim());
      assert.deepEqual(cells.slice(0, 6), [RUN, 'poetry-mc', '(average)', '20', '400', pct]);
      assert.equal(await section.locator('canvas[data-chart=evals]').getAttribute('data-points'), '1');
      await section.scrollIntoViewIfNeeded();
      await vs.screenshot('evals');

      // The checkpoint's line in the Runs view carries the score.
      await vs.treeItems('Steelscope', 'Runs');
      const runRow = vs.page.locator('.part.sidebar .monaco-list-row', { hasText: RUN }).first();
      if ((await runRow.getAttribute('aria-expanded')) === 'false') await runRow.locator('.monaco-tl-twistie').click();
      const rows = await eventually(
        () => vs.treeItems('Steelscope', 'Runs', 0),
        (list) => list.some((r) => r.label === 'step 20' && r.description.includes(`poetry-mc ${pct}`)),
        30_000,
      );
      assert.ok(rows.some((r) => r.label === 'step 20'));
    });
  },
);
