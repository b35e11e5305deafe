// The dashboard's Chat tab in a real browser (Debian's Chromium via playwright-core), the built
// bundle under its CSP: what it posts when a prompt is typed, how streamed tokens and a side-by-
// side comparison are drawn, and that model text stays text. Needs `npm run build` first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ROOT } from '../helpers';
import { postToWebview, skipWithoutChromium, withDashboard } from './dashboard-page';
import { buttonNamed, choose, optionTexts, valueOf } from '../toolkit-controls';
import { DEFAULT_CHAT_SETTINGS, DEFAULT_VIEW, type ChatAnswer, type HostMessage } from '../../src/shared/protocol';

const XSS = '<img src=x onerror=alert(1)>';
const skip = skipWithoutChromium;

const checkpoints = [
  { dir: '/runs/a/checkpoints/step-00000020', label: 'step 20', step: 20, best: false },
  { dir: '/runs/a/checkpoints/step-00000010', label: 'step 10 · eval 3.100 ★ best', step: 10, best: true },
];
const answer = (dir: string, text = '', status: ChatAnswer['status'] = 'streaming', note = ''): ChatAnswer => ({
  checkpoint: dir,
  label: dir.slice(-4),
  text,
  status,
  note,
});

function chatSnapshot(patch: Partial<HostMessage<'chatSnapshot'>> = {}): HostMessage<'chatSnapshot'> {
  return {
    type: 'chatSnapshot',
    checkpoints,
    checkpoint: checkpoints[1].dir,
    compare: null,
    settings: DEFAULT_CHAT_SETTINGS,
    turns: [],
    focus: false,
    ...patch,
  };
}

/** Polls `read` until it deep-equals `expected` (a posted message is handled a moment later), then asserts. */
async function settles<T>(read: () => Promise<T>, expected: T, message?: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  let value = await read();
  while (JSON.stringify(value) !== JSON.stringify(expected) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    value = await read();
  }
  assert.deepEqual(value, expected, message);
}

const posted = (page: Page) => page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted);

test(
  'chat tab: send with Enter, stream two answers side by side, text stays text',
  { skip, timeout: 60_000 },
  async () => {
    await withDashboard(async ({ page, refused }) => {
      await page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);
      await postToWebview(page, { type: 'snapshot', seq: 1, view: DEFAULT_VIEW, maxPoints: 2000, keys: [], runs: [] });
      assert.equal(await page.locator('.chat').isVisible(), false, 'the samples tab is shown first');
      // The host's chat snapshot on "ready" comes before the Chat tab (and its view) is first opened.
      await postToWebview(page, chatSnapshot({ checkpoint: checkpoints[0].dir }));
      await page.locator('#tab-chat').click();
      await page.locator('.chat').waitFor({ state: 'visible' });
      await settles(
        () => valueOf(page.locator('.chat vscode-dropdown[aria-label=Checkpoint]')),
        checkpoints[0].dir,
        'the snapshot that came before the tab was opened',
      );
      await page.locator('#tab-samples').click();
      await page.locator('.chat').waitFor({ state: 'hidden' });
      await postToWebview(page, chatSnapshot({ focus: true }));
      await page.locator('.chat').waitFor({ state: 'visible' });
      await settles(
        () => valueOf(page.locator('.chat vscode-dropdown[aria-label=Checkpoint]')),
        checkpoints[1].dir,
        'the host chose the best',
      );
      assert.deepEqual(await optionTexts(page.locator('.chat vscode-dropdown[aria-label="Compare with"]')), [
        'None',
        'step 20',
      ]);

      await choose(page.locator('.chat vscode-dropdown[aria-label="Compare with"]'), checkpoints[0].dir);
      await page.locator('.chat textarea').fill('寫一首春天的詩');
      await page.locator('.chat textarea').press('Enter');
      const sent = (await posted(page)).filter((m) => m.type === 'chatSend' || m.type === 'chatSelect');
      assert.deepEqual(sent.at(-1), {
        type: 'chatSend',
        prompt: '寫一首春天的詩',
        checkpoint: checkpoints[1].dir,
        compare: checkpoints[0].dir,
        settings: DEFAULT_CHAT_SETTINGS,
      });
      assert.equal(sent[0].type, 'chatSelect', 'choosing a comparison is remembered by the host');
      await settles(() => page.locator('.chat textarea').inputValue(), '', 'the prompt is cleared once sent');
      // The toggle is a setting like the others: the host hears of it at once and serve gets valid_utf8.
      await page.locator('.chat vscode-checkbox[data-setting=valid_utf8]').click();
      await settles<unknown>(
        async () => (await posted(page)).filter((m) => m.type === 'chatSelect').at(-1),
        {
          type: 'chatSelect',
          checkpoint: checkpoints[1].dir,
          compare: checkpoints[0].dir,
          settings: { ...DEFAULT_CHAT_SETTINGS, valid_utf8: true },
        },
        'Valid UTF-8 only is sent with the settings',
      );

      // The host answers with the turn, then streams both lanes.
      const turn = {
        id: 1,
        prompt: '寫一首春天的詩',
        answers: [answer(checkpoints[1].dir), answer(checkpoints[0].dir)],
      };
      await postToWebview(page, chatSnapshot({ compare: checkpoints[0].dir, turns: [turn] }));
      for (const token of ['春', '眠', XSS]) await postToWebview(page, { type: 'chatToken', turn: 1, lane: 0, token });
      await postToWebview(page, { type: 'chatToken', turn: 1, lane: 1, token: '月' });
      await postToWebview(page, { type: 'chatToken', turn: 7, lane: 0, token: 'lost' });
      await settles(() => page.locator('.chat-answer-text').allTextContents(), [`春眠${XSS}`, '月']);
      assert.equal(await page.locator('.chat-answers.compare').count(), 1, 'two answers side by side');
      await settles(() => buttonNamed(page.locator('.chat'), 'Send').isDisabled(), true, 'Send disabled');
      await settles(() => buttonNamed(page.locator('.chat'), 'Stop').isDisabled(), false, 'Stop enabled');
      await buttonNamed(page.locator('.chat'), 'Stop').click();
      assert.equal((await posted(page)).at(-1)?.type, 'chatStop');

      await postToWebview(page, {
        type: 'chatDone',
        turn: 1,
        lane: 0,
        answer: answer(checkpoints[1].dir, `春眠${XSS}`, 'stopped', 'stopped · 3 tokens · seed 1'),
      });
      await postToWebview(page, {
        type: 'chatDone',
        turn: 1,
        lane: 1,
        answer: answer(checkpoints[0].dir, '月', 'error', 'The serve process exited with code 1.'),
      });
      await settles(
        () => page.locator('.chat-answer-note').allTextContents(),
        ['stopped · 3 tokens · seed 1', 'The serve process exited with code 1.'],
      );
      await settles(() => buttonNamed(page.locator('.chat'), 'Regenerate').isDisabled(), false, 'Regenerate enabled');
      assert.equal(await page.locator('.chat img').count(), 0, 'no element made from model text');

      // A setting out of range is named, and nothing is sent.
      const before = (await posted(page)).length;
      await page.locator('.chat vscode-text-field[data-setting=top_p] input').fill('0');
      await page.locator('.chat textarea').fill('again');
      await buttonNamed(page.locator('.chat'), 'Send').click();
      assert.match((await page.locator('.chat-notice').textContent()) ?? '', /Top-p is out of range/);
      assert.equal(
        (await posted(page)).slice(before).some((m) => m.type === 'chatSend'),
        false,
      );
      await postToWebview(page, { type: 'chatError', message: 'An answer is still being written.' });
      await settles(() => page.locator('.chat-notice').textContent(), 'An answer is still being written.');

      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(ROOT, 'test-artifacts', 'chat.png'), fullPage: true });
      assert.deepEqual(await page.evaluate(() => (window as unknown as { __alerts: unknown[] }).__alerts), []);
      assert.deepEqual(
        await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations),
        [],
        'no CSP violation',
      );
      assert.deepEqual(refused, [], 'no request outside the bundle, no console error');
    });
  },
);
