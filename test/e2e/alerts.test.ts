// Alerts in a real VS Code (code-server): a watched run that logs a nan event and then finishes
// raises both notifications, each with "Open Dashboard" (which opens the run's dashboard), and a
// rule set on the dashboard (grad_norm above 10) fires once when grad_norm crosses it, not on each
// of the records above it that follow.
//
// The run is written by this test: a stand-in trainer process (a script named cli.js started as
// `node …/cli.js train --run-dir <dir>`, so the extension's /proc check takes it for our trainer
// and shows the run as running, not stale) holds the run while the test appends metrics.jsonl and
// events.jsonl records and finally rewrites run.json as finished. Nothing waits on a clock: each
// step waits (with generous limits) for what the user would see.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FrameLocator, Locator } from 'playwright-core';
import { choose } from '../toolkit-controls';
import { e2eSkip, eventually, runWithStatus, withVSCode, type VSCodeSession } from './harness';

const RUN = 'alert-run';

/** run.json as a trainer writes it: atomically (temp file, rename). */
function writeRunJson(dir: string, pid: number, createdAt: string, status: 'running' | 'finished'): void {
  const exit = status === 'finished' ? { code: 0, reason: 'finished', at: new Date().toISOString() } : null;
  const info = { format: 'steelscope.run/1', id: RUN, name: RUN, createdAt, host: 'e2e', pid, status, step: 0, exit };
  writeFileSync(join(dir, 'run.json.tmp'), JSON.stringify(info));
  renameSync(join(dir, 'run.json.tmp'), join(dir, 'run.json'));
}

const metric = (step: number, gradNorm: number, loss = 3 - step / 10) =>
  JSON.stringify({ step, t: Date.now(), loss, grad_norm: gradNorm }) + '\n';

/** A process our /proc check takes for the trainer of `dir`: it only stays alive until killed. */
function standInTrainer(tmp: string, dir: string): ChildProcess {
  const bin = join(tmp, 'stand-in');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'cli.js'), 'setInterval(() => undefined, 1 << 30);\n');
  return spawn(process.execPath, [join(bin, 'cli.js'), 'train', '--run-dir', dir], { stdio: 'ignore' });
}

/** The toast whose message matches `message` (waits for it). */
async function toast(vs: VSCodeSession, message: RegExp): Promise<Locator> {
  const item = vs.page.locator('.notifications-toasts .notification-list-item').filter({ hasText: message }).first();
  await item.waitFor({ state: 'visible', timeout: 120_000 });
  return item;
}

const openDashboardButton = (item: Locator) => item.locator('.monaco-button', { hasText: /^Open Dashboard$/ });

/** The points the dashboard's chart `key` draws now (0 before it is drawn). */
async function chartPoints(dash: FrameLocator, key: string): Promise<number> {
  const points = await dash
    .locator(`canvas[data-chart="${key}"]`)
    .getAttribute('data-points', { timeout: 5_000 })
    .catch(() => null);
  return Number(points ?? '0');
}

/** The messages of every notification so far (the notification center keeps those no longer toasted). */
async function allNotifications(vs: VSCodeSession): Promise<string[]> {
  await vs.runCommand('Notifications: Show Notifications');
  const center = vs.page.locator('.notifications-center');
  await center.waitFor({ state: 'visible' });
  const texts = await center.locator('.notification-list-item-message').allInnerTexts();
  await vs.runCommand('Notifications: Hide Notifications');
  return texts.map((t) => t.trim());
}

test(
  'a watched run: nan event and finish notify with Open Dashboard; a dashboard rule fires once per crossing',
  { skip: e2eSkip(), timeout: 400_000 },
  async () => {
    await withVSCode({ name: 'alerts', settings: { 'steelscope.notify': 'all' } }, async (vs) => {
      const dir = join(vs.runsRoot, RUN);
      mkdirSync(dir, { recursive: true });
      const trainer = standInTrainer(vs.tmp, dir);
      try {
        assert.ok(trainer.pid);
        const createdAt = new Date().toISOString(); // after the process started, as a trainer's is
        writeFileSync(join(dir, 'metrics.jsonl'), [1, 2, 3].map((s) => metric(s, 1)).join(''));
        writeFileSync(join(dir, 'events.jsonl'), '');
        writeRunJson(dir, trainer.pid, createdAt, 'running');

        await vs.openWorkbench();
        await runWithStatus(vs, RUN, /^running/);

        // A nan event: one warning, with Open Dashboard, which opens the run's dashboard.
        appendFileSync(
          join(dir, 'metrics.jsonl'),
          JSON.stringify({ step: 4, t: Date.now(), loss: 'NaN', grad_norm: 2 }) + '\n',
        );
        const nan = { step: 4, t: Date.now(), kind: 'nan', level: 'error', message: 'loss is NaN at step 4' };
        appendFileSync(join(dir, 'events.jsonl'), JSON.stringify(nan) + '\n');
        const nanToast = await toast(vs, /alert-run, step 4: loss is NaN at step 4/);
        await openDashboardButton(nanToast).click();
        const dash = await vs.webviewWhenOpen(RUN);
        await eventually(
          () => chartPoints(dash, 'grad_norm'),
          (n) => n === 4,
          60_000,
        );

        // The rule, as a user sets it: series grad_norm, above, 10, Add alert.
        await choose(dash.locator('.alert-rules vscode-dropdown[aria-label=Series]'), 'train/grad_norm');
        await dash.locator('.alert-rules vscode-text-field[aria-label=Value] input').fill('10');
        await dash.locator('.alert-rules vscode-button', { hasText: 'Add alert' }).click();
        await dash.locator('.alert-rule', { hasText: 'grad_norm > 10' }).waitFor({ state: 'visible' });

        // Below, then above four times in a row (each record read on its own), then below.
        const gradNorms = [5, 12, 15, 20, 30, 4];
        for (const [i, g] of gradNorms.entries()) {
          appendFileSync(join(dir, 'metrics.jsonl'), metric(5 + i, g));
          await eventually(
            () => chartPoints(dash, 'grad_norm'),
            (n) => n === 5 + i,
            60_000,
          );
        }
        await toast(vs, /step 6: grad_norm = 12 crossed grad_norm > 10/);

        // The run finishes: one information, with Open Dashboard, which opens the dashboard again.
        await vs.runCommand('View: Close All Editors');
        writeRunJson(dir, trainer.pid, createdAt, 'finished');
        const finished = await toast(vs, /Run alert-run finished\./);
        await openDashboardButton(finished).click();
        await vs.webviewWhenOpen(RUN);
        await vs.screenshot('finished');

        // Everything said, once each (the finish came after every record, so nothing is still on its
        // way): the rule's one alert is still listed; the nan and finish notifications were closed by
        // their Open Dashboard click, so a second of either would be the one listed.
        const said = await allNotifications(vs);
        const count = (re: RegExp) => said.filter((m) => re.test(m)).length;
        assert.equal(count(/crossed grad_norm > 10/), 1, `one alert for the rule: ${JSON.stringify(said)}`);
        assert.equal(count(/loss is NaN/), 0, JSON.stringify(said));
        assert.equal(count(/alert-run finished/), 0, JSON.stringify(said));
      } finally {
        trainer.kill();
      }
    });
  },
);
