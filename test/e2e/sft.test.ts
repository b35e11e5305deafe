// Issue 17's fine-tuning in a real VS Code. A tiny base run and a fine-tuned one (80 steps on the
// shipped poetry-sft set, the settings of test/integration/sft.test.ts) are made by the CLI into the
// runs folder before the workbench opens (a few seconds). Then:
// - Start Training → "Fine-tune from a checkpoint…" → the base's checkpoint → poetry-sft → 2 steps →
//   learning rate 2e-4: the run finishes, and its run.json records the base checkpoint, the ChatML
//   template and that learning rate (min_lr a tenth of it); the walk again offers 2e-4 for that base
//   (remembered) and refuses 0 with one line;
// - Chat with Checkpoint on the fine-tuned one, greedy: the reply is complete and its note says it
//   ended at <|im_end|>, asked in ChatML (the serve done message names the end token sampled).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers';
import { e2eSkip, finishedAnswer, runWithStatus, trainingPrompts, trainWithCli, withVSCode } from './harness';

const BASE = 'base-run';
const TUNED = 'chat-ft';
const TINY = ['n_layer=1', 'n_embd=32', 'n_head=2', 'n_kv_head=2', 'intermediate_size=64', 'vocab_size=512'];
const FAST = ['lr=3e-3', 'min_lr=3e-4', 'warmup_steps=5', 'sample_every=0', 'eval_every=0'];
const sets = (list: string[]) => list.flatMap((s) => ['--set', s]);

test(
  'fine-tune from Start Training, then chat with a fine-tuned checkpoint: the reply ends at <|im_end|>',
  { skip: e2eSkip(), timeout: 300_000 },
  async () => {
    await withVSCode({ name: 'sft' }, async (vs) => {
      const base = trainWithCli(vs, BASE, { steps: 1, sets: sets(TINY), poems: 200 });
      const baseCheckpoint = join(base, 'checkpoints', 'step-00000001');
      const tuned = join(vs.runsRoot, TUNED);
      const sft = ['sft', '--from', baseCheckpoint, '--data', 'poetry-sft', '--run-dir', tuned, '--name', TUNED];
      const fineTuned = runCli([...sft, '--steps', '80', ...sets(FAST)]);
      assert.equal(fineTuned.code, 0, fineTuned.stderr);

      await vs.openWorkbench();
      const fineTune = {
        preset: /Fine-tune from a checkpoint/,
        prompts: [{ title: /: checkpoint to fine-tune$/, answer: `${BASE} · step 1` }],
        data: /poetry-sft/,
        steps: 2,
      };
      // The learning rate's default is a tenth of the base run's (tiny: 3e-3).
      await vs.runCommand('Steelscope: Start Training…');
      await vs.answerPrompts(trainingPrompts(fineTune));
      assert.equal(await vs.inputValue(/: learning rate$/), '0.0003');
      await vs.answerPrompts([
        { title: /: learning rate$/, answer: { type: '2e-4' } },
        { title: /: run name/, answer: { type: 'ui-ft' } },
      ]);
      await runWithStatus(vs, 'ui-ft', /finished/, 120_000);
      const folder = readdirSync(vs.runsRoot).find((n) => n.startsWith('ui-ft-'));
      assert.ok(folder, 'the run folder is in the runs root');
      const run = JSON.parse(readFileSync(join(vs.runsRoot, folder, 'run.json'), 'utf8'));
      assert.equal(run.template, 'chatml');
      assert.equal(run.base_checkpoint.path, baseCheckpoint);
      assert.equal(run.data.input, 'poetry-sft');
      assert.equal(run.step, 2);
      assert.deepEqual([run.config.lr, run.config.min_lr], [2e-4, 2e-5]);
      // The next fine-tune of that base offers the rate given last; a rate of 0 is refused with one line.
      await vs.runCommand('Steelscope: Start Training…');
      await vs.answerPrompts(trainingPrompts(fineTune));
      assert.equal(await vs.inputValue(/: learning rate$/), '0.0002');
      assert.match(
        await vs.inputProblem('0'),
        /^Enter a positive number up to 10 \(e\.g\. 3e-4\), the peak learning rate/,
      );
      await vs.page.keyboard.press('Escape');
      await vs.screenshot('sft-started');

      await vs.runCommand('Steelscope: Chat with Checkpoint');
      await vs.pickItem(TUNED);
      await vs.pickItem(/^step 80\b/);
      const dash = await vs.webviewWhenOpen(TUNED, 60_000);
      const prompt = dash.locator('.chat textarea');
      await prompt.waitFor({ state: 'visible' });
      // Greedy and unpenalised, as the integration test asks it: deterministic.
      for (const [setting, value] of [
        ['temperature', '0'],
        ['repetition_penalty', '1'],
        ['max_tokens', '100'],
      ])
        await dash.locator(`.chat vscode-text-field[data-setting=${setting}] input`).fill(value);
      await prompt.fill('寫一首題為《春》的詩');
      await prompt.press('Enter');
      await finishedAnswer(dash, 60_000);
      const answer = dash.locator('.chat-answer').first();
      assert.equal(await answer.getAttribute('data-status'), 'done');
      const note = (await answer.locator('.chat-answer-note').textContent()) ?? '';
      assert.match(note, /^ended at <\|im_end\|> · \d+ tokens? · seed \d+ · ChatML \(fine-tuned\)$/);
      await vs.screenshot('sft-chat');
    });
  },
);
