// Issue 5's end-to-end scenario in a real VS Code: a finished run with two checkpoints (trained by
// the CLI into the runs folder before the workbench opens, about two seconds), then "Steelscope:
// Chat with Checkpoint" from the palette, a prompt typed into the dashboard's Chat tab, and the
// reply read from inside the webview while it streams; then the same with "Compare with", and
// the conversation is still there after the panel was hidden and shown again, and after a window
// reload (the panel and its chat are restored).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { FrameLocator } from 'playwright-core';
import { choose, valueOf } from '../toolkit-controls';
import { e2eSkip, eventually, finishedAnswer, trainWithCli, withVSCode } from './harness';

const RUN = 'chat-run';

interface Probe {
  __lengths?: number[][];
}

/** Records the length of every answer's text at each change, from inside the webview. */
async function recordLengths(dash: FrameLocator): Promise<void> {
  await dash.locator('.chat-transcript').evaluate((transcript) => {
    const w = window as unknown as Probe;
    w.__lengths = [];
    const lengths = w.__lengths;
    new MutationObserver(() => {
      lengths.push(Array.from(transcript.querySelectorAll('.chat-answer-text')).map((e) => e.textContent?.length ?? 0));
    }).observe(transcript, { childList: true, subtree: true, characterData: true });
  });
}

const lengthsSeen = (dash: FrameLocator) =>
  dash.locator('body').evaluate(() => (window as unknown as Probe).__lengths ?? []);

test(
  'chat with a checkpoint from the palette: the reply streams into the dashboard, then side by side',
  { skip: e2eSkip(), timeout: 300_000 },
  async () => {
    await withVSCode({ name: 'chat' }, async (vs) => {
      const runDir = trainWithCli(vs, RUN, { steps: 20 });
      const step = (n: number) => join(runDir, 'checkpoints', `step-${String(n).padStart(8, '0')}`);

      await vs.openWorkbench();
      await vs.runCommand('Steelscope: Chat with Checkpoint');
      await vs.pickItem(RUN);
      await vs.pickItem(/^step 20\b/);
      const dash = await vs.webviewWhenOpen(RUN, 60_000);
      const prompt = dash.locator('.chat textarea');
      await prompt.waitFor({ state: 'visible' });
      const chosen = await eventually(
        () => valueOf(dash.locator('.chat vscode-dropdown[aria-label=Checkpoint]')),
        (v) => v === step(20),
        10_000,
      );
      assert.equal(chosen, step(20), 'the picked checkpoint is chosen');

      await recordLengths(dash);
      await prompt.fill('寫一首春天的詩');
      await prompt.press('Enter');
      const text = await finishedAnswer(dash, 60_000);
      assert.ok(text.length > 0, 'the reply has text');
      const grew = [...new Set((await lengthsSeen(dash)).map((l) => l[0]).filter((n) => n > 0))];
      assert.ok(grew.length >= 2, `the reply was seen growing (lengths ${grew.join(', ')})`);
      assert.deepEqual(
        grew,
        [...grew].sort((a, b) => a - b),
        'it only grows',
      );
      assert.equal(grew.at(-1), text.length);
      await vs.screenshot('chat');

      // The same prompt to two checkpoints, answered next to each other.
      await choose(dash.locator('.chat vscode-dropdown[aria-label="Compare with"]'), step(10));
      await prompt.fill('月');
      await prompt.press('Enter');
      const second = dash.locator('.chat-turn').nth(1);
      await eventually(
        () => second.locator('.chat-answer:not([data-status=streaming])').count(),
        (n) => n === 2,
        60_000,
      );
      const heads = await second.locator('.chat-answer-head').allTextContents();
      assert.match(heads[0], /^step 20/);
      assert.match(heads[1], /^step 10/);
      await second.scrollIntoViewIfNeeded();
      await vs.screenshot('chat-compare');

      // Hidden behind another editor, the webview is destroyed; shown again, the host's history returns.
      const before = await dash.locator('.chat-answer-text').allTextContents();
      await vs.runCommand('File: New Untitled Text File');
      await dash.locator('.chat').waitFor({ state: 'detached' });
      const again = await vs.frameOfWebview(RUN);
      await eventually(
        () => again.locator('.chat-answer-text').allTextContents(),
        (texts) => JSON.stringify(texts) === JSON.stringify(before),
        30_000,
      );
      assert.equal(await again.locator('.chat').isVisible(), true, 'still on the Chat tab');

      // A window reload restores the panel, and its conversation with it.
      await vs.reloadWindow();
      const reloaded = await vs.webviewWhenOpen(RUN, 60_000);
      await eventually(
        () => reloaded.locator('.chat-answer-text').allTextContents(),
        (texts) => JSON.stringify(texts) === JSON.stringify(before),
        30_000,
      );
      await vs.screenshot('chat-reloaded');
    });
  },
);
