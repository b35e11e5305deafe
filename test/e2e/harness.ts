// End-to-end harness: the packaged extension in a real VS Code (code-server 4.100.3, installed by
// `bash scripts/install-e2e.sh`) driven in Debian's Chromium by playwright-core.
//
// Writing a scenario test:
//
//   import { test } from 'node:test';
//   import { e2eSkip, withVSCode } from './harness';
//
//   test('trains from the palette', { skip: e2eSkip(), timeout: 300_000 }, async () => {
//     await withVSCode({ name: 'train' }, async (vs) => {
//       await vs.openWorkbench();                          // vs.workspace, opened in the browser
//       await vs.runCommand('Steelscope: Start Training…'); // the palette label, category included
//       await vs.pickItem('tiny');                          // a quick pick row, by its label
//       await vs.typeInput('my-run');                       // an input box: type, Enter
//       await vs.notificationText(/started/);               // waits for a matching toast
//       const rows = await vs.treeItems('Steelscope', 'Runs'); // activity-bar container, view
//       assert.equal(rows[0].label, 'my-run');
//       const dash = await vs.frameOfWebview('my-run');     // FrameLocator inside the webview
//       await dash.locator('canvas').first().waitFor();     // any playwright locator works in it
//       await vs.screenshot('dashboard');                   // test-artifacts/e2e/train-dashboard.png
//     });
//   });
//
// API (all on the VSCodeSession that startVSCode/withVSCode give you):
//   e2eSkip()                   skip reason when code-server is missing (false under CI: then fail)
//   startVSCode(opts)           package + install the .vsix, start code-server, launch Chromium
//   withVSCode(opts, body)      startVSCode, run body, screenshot '<name>-failure' if it throws,
//                               always shutdown()
//   vs.page                     the playwright Page of the workbench
//   vs.workspace / vs.runsRoot  the temp workspace folder, and `steelscope.runsRoot` inside it
//   vs.openWorkbench(folder?)   open a folder (default vs.workspace); resolves once it is drawn
//   vs.reloadWindow()           Developer: Reload Window (state flushed first); resolves when drawn
//   vs.runCommand(label)        F1, type '>label', choose the row whose label is exactly `label`
//   vs.pickItem(label)          choose a row of the open quick pick (string: exact; or RegExp)
//   vs.quickItems()             labels of the rows of the open quick pick
//   vs.typeInput(text, title?)  fill the open input box / quick pick filter (waiting for the box
//                               titled `title` first), then Enter
//   vs.chooseFolder(dir, ok)    choose folder `dir` in VS Code's folder dialog, press its button `ok`
//   vs.promptTitle()            the title of the quick input shown now ('' when none)
//   vs.answerPrompts(prompts)   answer a command's quick picks / input boxes by their titles
//                               ({title: /steps$/, answer: {type: '400'}} or answer: a row label)
//   vs.inputValue(title)        the text an input box of that title shows (its default)
//   vs.inputProblem(text)       type text without Enter; the validation message shown for it
//   vs.notificationText(m?)     text of the first toast matching m (string: substring; RegExp)
//   vs.notifications()          texts of all toasts shown now
//   vs.showContainer(title)     open an activity-bar view container ('Explorer', 'Steelscope')
//   vs.treeItems(c, view, n?)   open activity-bar container c, expand view, wait for n (default 1)
//                               rendered rows, list them as {label, description, level, expanded}
//   vs.frameOfWebview(title?)   bring the editor tab `title` forward; the visible webview's
//                               content frame (two iframes deep) as a FrameLocator
//   vs.webviewWhenOpen(title)   frameOfWebview(title) once that tab exists (polls)
//   vs.screenshot(name)         PNG into test-artifacts/e2e/<session>-<name>.png; returns path
//   eventually(read, ok, ms?)   poll read() until ok(value); e.g. until a run shows 'finished'
//   vs.shutdown()               close the browser, kill code-server's whole process tree
//                               (extension hosts, trainers), copy logs to test-artifacts/e2e/,
//                               delete the temp folder (kept when STEELSCOPE_E2E_KEEP=1)
//   anything else               vs.page is a plain playwright Page: use its locators directly
//
// Steelscope's steps (functions taking the session):
//   startTraining(vs, {target?, engine?, processes?, preset?, data?, steps, name, prompts?})
//                               walk "Start Training…" (defaults: this machine, bundled engine,
//                               1 process, tiny, the poetry corpus); `prompts` answers further
//                               steps by title (Slurm partition, eval set, …); returns the name
//   trainingPrompts(choices)    those steps' answers, for answerPrompts (no name: stop before it)
//   slurmPrompts({partition, nodes?, gpusPerNode?, timeLimit?})
//                               the Slurm steps of Start Training on a login node, for `prompts`
//   lossPoints(dashboard)       points drawn by the dashboard's loss chart now
//   lossPointsGrow(dashboard)   wait for 2 points, then more: {first, later}
//   runWithStatus(vs, run, re)  wait for the Runs view to show `run` with a matching status
//   stopRun(vs, run)            Stop Run on `run`, wait until it shows stopped
//   finishedAnswer(chat, ms)    the first chat answer's text once it stopped streaming (not error)
//
// Each session gets its own temp folder under .test-tmp/ holding the code-server config,
// user-data, extensions and Chromium profile, with XDG_* and TMPDIR pointed inside it, so nothing
// lands in the home folder or /tmp. Logs (code-server, VS Code incl. the extension host, browser
// console errors) are copied to test-artifacts/e2e/<name>-logs/ at shutdown. Timings on 2 cores:
// about 6 s from start to a running browser, 5-9 s more to a drawn workbench.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type FrameLocator, type Locator, type Page } from 'playwright-core';
import { MARKER_VAR, killSession, killSessionAndWait } from './process-tree';
import { CHROMIUM_ARGS, freePort, poetrySubset, runCli, scratch, SMALL_SETS } from '../helpers';
import type { TestSshd } from '../sshd';

export const ROOT = resolve(__dirname, '..', '..');
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'e2e');
export const CODE_SERVER_VERSION = '4.100.3';
export const CHROMIUM = process.env.STEELSCOPE_E2E_CHROMIUM ?? '/usr/bin/chromium';
const INSTALL_HINT = 'bash scripts/install-e2e.sh';

/** Where install-e2e.sh puts code-server (same default and override). */
export function e2eDir(): string {
  return process.env.STEELSCOPE_E2E_DIR ?? join(homedir(), '.cache', 'steelscope-e2e', 'code-server');
}

/** The code-server binary when install-e2e.sh finished for our version, else undefined. */
export function codeServerBin(): string | undefined {
  const dir = e2eDir();
  const bin = join(dir, 'node_modules', '.bin', 'code-server');
  const marker = join(dir, '.installed');
  if (!existsSync(bin) || !existsSync(marker)) return undefined;
  return readFileSync(marker, 'utf8').trim() === CODE_SERVER_VERSION ? bin : undefined;
}

/**
 * For node:test's `skip` option: a reason when code-server or Chromium is missing. Under CI it
 * is false, so the test runs and startVSCode fails with the same hint: CI must not pass by
 * skipping its end-to-end tests.
 */
export function e2eSkip(): string | false {
  const missing = !codeServerBin()
    ? `code-server ${CODE_SERVER_VERSION}`
    : !existsSync(CHROMIUM)
      ? CHROMIUM
      : undefined;
  if (!missing || process.env.CI) return false;
  return `${missing} is not installed: run \`${INSTALL_HINT}\``;
}

let vsixPromise: Promise<string> | undefined;

/** Packages the built extension once per test process (vsce, about 2 s). */
export function packageExtension(): Promise<string> {
  vsixPromise ??= (async () => {
    if (!existsSync(join(ROOT, 'dist', 'extension.js'))) {
      throw new Error('e2e: dist/extension.js is missing: run `npm run build` first');
    }
    const dir = mkdtempSync(join(scratchBase(), 'vsix-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, 'steelscope.vsix');
    const vsce = join(ROOT, 'node_modules', '.bin', 'vsce');
    const args = ['package', '--no-dependencies', '--skip-license', '--allow-missing-repository', '--out', out];
    const r = spawnSync(vsce, args, {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 120_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (r.status !== 0) throw new Error(`e2e: vsce package failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
    return out;
  })();
  return vsixPromise;
}

export interface StartOptions {
  /** Names the temp folder, screenshots and logs; keep it short and file-name safe. */
  name: string;
  /** User settings on top of the harness's quiet defaults and `steelscope.runsRoot`. */
  settings?: Record<string, unknown>;
  /** A .vsix to install instead of the packaged repository. */
  vsix?: string;
  /** Playwright's default timeout for every wait, in ms (default 30 s; 2-core CI is slow). */
  timeoutMs?: number;
  /** Extra environment for code-server and its extension host (e.g. HOME with a test ~/.ssh). */
  env?: Record<string, string>;
}

/** A quick pick row to choose (string: the exact label; or a RegExp), or text to type into an input box. */
export type PromptAnswer = string | RegExp | { type: string };

/** The answer to the prompt (quick pick or input box) whose title matches `title`. */
export interface Prompt {
  title: RegExp;
  answer: PromptAnswer;
}

export interface TreeRow {
  label: string;
  description: string;
  /** 1 for top-level rows. */
  level: number;
  /** undefined for a leaf. */
  expanded: boolean | undefined;
}

function scratchBase(): string {
  const base = join(ROOT, '.test-tmp');
  mkdirSync(base, { recursive: true });
  return base;
}

function defaultSettings(runsRoot: string): Record<string, unknown> {
  return {
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'workbench.welcomePage.walkthroughs.openOnInstall': false,
    'security.workspace.trust.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoUpdate': false,
    'extensions.autoCheckUpdates': false,
    'extensions.ignoreRecommendations': true,
    'git.enabled': false,
    'steelscope.runsRoot': runsRoot,
  };
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A string matches exactly (after trimming); a RegExp as it is. */
function exact(label: string | RegExp): RegExp {
  return typeof label === 'string' ? new RegExp(`^\\s*${escapeRegExp(label)}\\s*$`) : label;
}

export class VSCodeSession {
  readonly marker = randomUUID();
  readonly tmp: string;
  readonly workspace: string;
  readonly runsRoot: string;
  readonly userData: string;
  readonly extensionsDir: string;
  port = 0;
  private server: ChildProcess | undefined;
  private context: BrowserContext | undefined;
  private page_: Page | undefined;
  private readonly consoleErrors: string[] = [];
  private closed = false;
  private readonly onExit = () => killSession(this.server?.pid, this.marker);
  // Ctrl-C or a runner's SIGTERM skips 'exit' handlers: kill the tree, then die as the signal would.
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.onExit();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  constructor(readonly options: StartOptions) {
    this.tmp = mkdtempSync(join(scratchBase(), `e2e-${options.name}-`));
    this.workspace = join(this.tmp, 'workspace');
    this.runsRoot = join(this.workspace, 'runs');
    this.userData = join(this.tmp, 'user-data');
    this.extensionsDir = join(this.tmp, 'extensions');
    for (const d of [this.runsRoot, this.extensionsDir, join(this.userData, 'User'), join(this.tmp, 'tmp')]) {
      mkdirSync(d, { recursive: true });
    }
    // A test that throws before shutdown() still leaves no extension host behind.
    process.once('exit', this.onExit);
    process.once('SIGINT', this.onSignal);
    process.once('SIGTERM', this.onSignal);
  }

  get page(): Page {
    if (!this.page_) throw new Error('e2e: the browser is not started');
    return this.page_;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** code-server and everything it starts see only the temp folder, and carry the marker. */
  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      XDG_CONFIG_HOME: join(this.tmp, 'xdg-config'),
      XDG_DATA_HOME: join(this.tmp, 'xdg-data'),
      XDG_CACHE_HOME: join(this.tmp, 'xdg-cache'),
      TMPDIR: join(this.tmp, 'tmp'),
      ...this.options.env,
      [MARKER_VAR]: this.marker,
    };
  }

  private codeServerArgs(): string[] {
    return ['--user-data-dir', this.userData, '--extensions-dir', this.extensionsDir];
  }

  async start(): Promise<void> {
    const bin = codeServerBin();
    if (!bin) throw new Error(`e2e: code-server ${CODE_SERVER_VERSION} is not installed: run \`${INSTALL_HINT}\``);
    const settings = { ...defaultSettings(this.runsRoot), ...this.options.settings };
    writeFileSync(join(this.userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
    this.installExtension(bin, this.options.vsix ?? (await packageExtension()));
    // The port was free a moment ago; if another process binds it first, code-server exits saying
    // EADDRINUSE and a new port is tried: a choice of port, never a test's assertion, is repeated.
    for (let attempt = 1; ; attempt++) {
      this.port = await freePort();
      try {
        await this.startServer(bin);
        break;
      } catch (err) {
        if (attempt === 3 || !this.serverLog().includes('EADDRINUSE')) throw err;
      }
    }
    await this.launchBrowser();
  }

  private installExtension(bin: string, vsix: string): void {
    const args = [...this.codeServerArgs(), '--install-extension', vsix];
    const r = spawnSync(bin, args, { env: this.env(), encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0) throw new Error(`e2e: installing ${vsix} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }

  private async startServer(bin: string): Promise<void> {
    const config = join(this.tmp, 'config.yaml');
    writeFileSync(config, `bind-addr: 127.0.0.1:${this.port}\nauth: none\ncert: false\n`);
    const args = [
      '--config',
      config,
      ...this.codeServerArgs(),
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      '--ignore-last-opened',
      this.workspace,
    ];
    const log = createWriteStream(join(this.tmp, 'code-server.log'));
    // detached: its own process group, so a Ctrl-C aimed at the test runner does not race shutdown().
    this.server = spawn(bin, args, { env: this.env(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.server.stdout?.pipe(log);
    this.server.stderr?.pipe(log);
    await this.waitForHealth();
  }

  private async waitForHealth(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.server?.exitCode !== null) break;
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return;
      } catch {
        // Not listening yet.
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(
      `e2e: code-server did not answer ${this.url}/healthz (exit ${this.server?.exitCode}):\n${this.serverLog().slice(-4000)}`,
    );
  }

  private serverLog(): string {
    const path = join(this.tmp, 'code-server.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  private async launchBrowser(): Promise<void> {
    this.context = await chromium.launchPersistentContext(join(this.tmp, 'chromium'), {
      executablePath: CHROMIUM,
      headless: true,
      env: definedOnly(this.env()),
      viewport: { width: 1440, height: 900 },
      args: [...CHROMIUM_ARGS, '--disable-dev-shm-usage'],
    });
    this.context.setDefaultTimeout(this.options.timeoutMs ?? 30_000);
    this.page_ = this.context.pages()[0] ?? (await this.context.newPage());
    this.page_.on('console', (m) => {
      if (m.type() === 'error') this.consoleErrors.push(m.text());
    });
    this.page_.on('pageerror', (e) => this.consoleErrors.push(`pageerror: ${e.message}`));
  }

  /** Opens `folder` in the workbench; resolves when the workbench is drawn and the palette works. */
  async openWorkbench(folder = this.workspace): Promise<void> {
    await this.page.goto(`${this.url}/?folder=${encodeURIComponent(folder)}`);
    await this.page.locator('.monaco-workbench .part.statusbar').waitFor({ state: 'visible', timeout: 60_000 });
    await this.page.locator('.monaco-workbench .part.activitybar').waitFor({ state: 'visible' });
  }

  /**
   * Reloads the window as a user does (Developer: Reload Window) and waits for it to be drawn
   * again. Not page.goto/page.reload: the web workbench keeps its state (open editors, webview
   * state, extensions' workspaceState) in IndexedDB and on a browser navigation only starts the
   * flush in `beforeunload` without waiting for it, so the write can be lost with the page and the
   * state of up to a minute ago (its periodic flush) comes back. The command awaits the flush first.
   */
  async reloadWindow(): Promise<void> {
    const loaded = this.page.waitForEvent('load', { timeout: 120_000 });
    await this.runCommand('Developer: Reload Window');
    await loaded;
    await this.page.locator('.monaco-workbench .part.statusbar').waitFor({ state: 'visible', timeout: 60_000 });
    await this.page.locator('.monaco-workbench .part.activitybar').waitFor({ state: 'visible' });
  }

  private get quickInput(): Locator {
    return this.page.locator('.quick-input-widget');
  }

  private quickRow(label: string | RegExp): Locator {
    return this.quickInput
      .locator('.monaco-list-row')
      .filter({ has: this.page.locator('.label-name', { hasText: exact(label) }) })
      .first();
  }

  /** Runs a command by its palette label, e.g. 'Steelscope: Show Version'. */
  async runCommand(label: string, timeoutMs = 60_000): Promise<void> {
    const input = this.quickInput.locator('.quick-input-box input');
    const row = this.quickRow(label);
    const deadline = Date.now() + timeoutMs;
    // The palette lists the commands known when it opens, and the workbench is drawn before the
    // extension host has reported the extension's contributions: reopen until the row is there.
    for (;;) {
      // A webview with focus forwards F1 to the workbench, so no click is needed to focus first.
      await this.page.keyboard.press('F1');
      await input.waitFor({ state: 'visible' });
      await input.fill(`>${label}`);
      try {
        await row.waitFor({ state: 'visible', timeout: 3_000 });
        break;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await this.page.keyboard.press('Escape');
        await input.waitFor({ state: 'hidden' });
      }
    }
    await row.click();
  }

  /** The title of the quick input shown now ('' when none is shown, or it has no title); does not wait. */
  async promptTitle(): Promise<string> {
    const titles = await this.quickInput.locator('.quick-input-title').filter({ visible: true }).allInnerTexts();
    return titles[0]?.trim() ?? '';
  }

  /**
   * Answers a command's quick picks and input boxes as each is shown, by its title: the first
   * unanswered prompt whose `title` matches gets its answer. Returns once every prompt is answered
   * (and the last one has gone); a title that none matches fails with that title, so a command
   * that gains a step fails loudly where the test does not answer it.
   */
  async answerPrompts(prompts: readonly Prompt[], timeoutMs = 60_000): Promise<void> {
    const left = [...prompts];
    while (left.length > 0) {
      const shown = await eventually(
        () => this.promptTitle(),
        (t) => t !== '',
        timeoutMs,
      );
      const i = left.findIndex((p) => p.title.test(shown));
      if (i < 0) {
        const expected = left.map((p) => String(p.title)).join(', ');
        throw new Error(`e2e: the prompt "${shown}" has no answer (still to answer: ${expected})`);
      }
      const [{ answer }] = left.splice(i, 1);
      if (typeof answer === 'object' && 'type' in answer) await this.typeInput(answer.type);
      else await this.pickItem(answer);
      // One prompt replaces another in place: the next read must not see this one again.
      await eventually(
        () => this.promptTitle(),
        (t) => t !== shown,
        timeoutMs,
      );
    }
  }

  /** The text in the input box titled `title` once it is shown (its default, or a remembered answer). */
  async inputValue(title: RegExp): Promise<string> {
    await this.quickInput.locator('.quick-input-title').filter({ hasText: title }).waitFor({ state: 'visible' });
    return this.quickInput.locator('.quick-input-box input').inputValue();
  }

  /** Types into the open input box without accepting it; the validation message VS Code shows for that text. */
  async inputProblem(text: string): Promise<string> {
    const input = this.quickInput.locator('.quick-input-box input');
    const message = this.quickInput.locator('.quick-input-message');
    const shown = async () => ((await message.isVisible()) ? (await message.innerText()).trim() : '');
    // The message line shows the box's prompt until a validation message takes its place.
    const prompt = await shown();
    await input.fill(text);
    return eventually(shown, (t) => t !== '' && t !== prompt);
  }

  /** Chooses a row of the open quick pick. */
  async pickItem(label: string | RegExp): Promise<void> {
    const row = this.quickRow(label);
    await row.waitFor({ state: 'visible' });
    await row.click();
  }

  /** The labels of the open quick pick's rows (only the rendered ones: the list is virtual). */
  async quickItems(): Promise<string[]> {
    await this.quickInput.locator('.quick-input-box input').waitFor({ state: 'visible' });
    const names = await this.quickInput.locator('.monaco-list-row .label-name').allTextContents();
    return names.map((s) => s.trim());
  }

  /**
   * Types into the open input box (or quick pick filter) and presses Enter. With `title`, first
   * waits for the box of that title: one input box replaces another in place, and typing before
   * the swap would land in the previous one.
   */
  async typeInput(text: string, title?: RegExp): Promise<void> {
    if (title)
      await this.quickInput.locator('.quick-input-title').filter({ hasText: title }).waitFor({ state: 'visible' });
    const input = this.quickInput.locator('.quick-input-box input');
    await input.waitFor({ state: 'visible' });
    await input.fill(text);
    await input.press('Enter');
  }

  /**
   * Chooses the folder `dir` in VS Code's own folder dialog (code-server's simple file dialog) and
   * presses its OK button, labelled `okLabel` (the command's openLabel). The dialog lists its
   * starting folder after it opens, and when that listing lands it writes the starting folder back
   * into the path box: a path typed before then is overwritten, and the dialog stays on its starting
   * folder. So each step waits for what the dialog shows: its OK button (the dialog, not the palette
   * it replaces), the starting folder listed ('..' at least), then after typing, the path in the box
   * and only `dir`'s own sub-folders listed (a folder dialog lists folders, dot-folders included).
   */
  async chooseFolder(dir: string, okLabel: string): Promise<void> {
    const ok = this.quickInput.getByRole('button', { name: okLabel });
    const input = this.quickInput.locator('.quick-input-box input');
    await ok.waitFor({ state: 'visible' });
    await eventually(
      () => this.quickItems(),
      (rows) => rows.length > 0,
    );
    const path = dir.endsWith('/') ? dir : `${dir}/`;
    await input.fill(path);
    const listed = new Set([
      '..',
      ...readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name),
    ]);
    await eventually(
      async () => ({ value: await input.inputValue(), rows: await this.quickItems() }),
      ({ value, rows }) => value === path && rows.length > 0 && rows.every((r) => listed.has(r)),
    );
    await ok.click();
  }

  private get toasts(): Locator {
    return this.page.locator('.notifications-toasts .notification-list-item-message');
  }

  /** The text of the first toast matching `match` (a substring, or a RegExp); waits for it. */
  async notificationText(match?: string | RegExp, timeoutMs?: number): Promise<string> {
    const toast = (match === undefined ? this.toasts : this.toasts.filter({ hasText: match })).first();
    await toast.waitFor({ state: 'visible', timeout: timeoutMs });
    return (await toast.innerText()).trim();
  }

  /**
   * From now on keeps every text a toast shows, in order (toastsSeen): a progress notification's
   * messages come and go faster than a poll could be sure to see them.
   */
  async recordToasts(): Promise<void> {
    await this.page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { __toastsSeen?: string[] }).__toastsSeen = seen;
      new MutationObserver(() => {
        document.querySelectorAll('.notifications-toasts .notification-list-item-message').forEach((e) => {
          const text = (e.textContent ?? '').trim();
          if (text && !seen.includes(text)) seen.push(text);
        });
      }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    });
  }

  /** Every toast text seen since recordToasts, in order. */
  async toastsSeen(): Promise<string[]> {
    return this.page.evaluate(() => (window as unknown as { __toastsSeen?: string[] }).__toastsSeen ?? []);
  }

  /** The texts of the toasts shown now (none is not an error). */
  async notifications(): Promise<string[]> {
    return (await this.toasts.allInnerTexts()).map((s) => s.trim());
  }

  /** Opens an activity-bar view container by its title (e.g. 'Steelscope'). */
  async showContainer(title: string): Promise<void> {
    const item = this.page.locator(`.part.activitybar .action-item a.action-label[aria-label^="${title}"]`).first();
    // The side bar shows e.g. 'STEELSCOPE: RUNS' (upper-cased by CSS) for the open container.
    const shown = this.page
      .locator('.part.sidebar .composite.title')
      .filter({ hasText: new RegExp(`^\\s*${escapeRegExp(title)}\\b`, 'i') });
    // Clicking the item of the container already open would close the side bar.
    if (await shown.isVisible()) return;
    await item.click();
    await shown.waitFor({ state: 'visible' });
  }

  /**
   * The rendered rows of a tree view: opens `container`, expands the section `view` when it is
   * collapsed (a container with a single view has no section header; it is then just read), and
   * waits for at least `atLeast` rows (pass 0 to read an empty tree without waiting).
   */
  async treeItems(container: string, view: string, atLeast = 1): Promise<TreeRow[]> {
    await this.showContainer(container);
    const sidebar = this.page.locator('.part.sidebar');
    // Built from the page, not the sidebar: `has` locators are resolved inside each candidate.
    const headerOfView = this.page
      .locator('.pane-header')
      .filter({ has: this.page.locator('.title', { hasText: exact(view) }) });
    const header = sidebar
      .locator('.pane-header')
      .filter({ has: this.page.locator('.title', { hasText: exact(view) }) })
      .first();
    let pane = sidebar.locator('.pane').first();
    if ((await header.count()) > 0 && (await header.isVisible())) {
      if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
      pane = sidebar.locator('.pane').filter({ has: headerOfView });
    }
    const body = pane.locator('.pane-body');
    await body.waitFor({ state: 'visible' });
    // A section just expanded draws its rows a moment later.
    if (atLeast > 0)
      await body
        .locator('.monaco-list-row')
        .nth(atLeast - 1)
        .waitFor({ state: 'visible' });
    return body.locator('.monaco-list-row').evaluateAll((rows) =>
      rows.map((row) => {
        const expanded = row.getAttribute('aria-expanded');
        return {
          label: row.querySelector('.label-name')?.textContent?.trim() ?? '',
          description: row.querySelector('.label-description')?.textContent?.trim() ?? '',
          level: Number(row.getAttribute('aria-level') ?? '1'),
          expanded: expanded === null ? undefined : expanded === 'true',
        };
      }),
    );
  }

  /** frameOfWebview(title), once an editor tab of that title exists (a run opens its dashboard a while after it starts). */
  async webviewWhenOpen(title: string | RegExp, timeoutMs = 120_000): Promise<FrameLocator> {
    const frame = await eventually(
      async () => this.frameOfWebview(title).catch(() => undefined),
      (f) => f !== undefined,
      timeoutMs,
    );
    if (!frame) throw new Error(`e2e: no webview titled ${String(title)}`); // eventually returned an accepted value
    return frame;
  }

  /**
   * The content of a webview, two iframes deep. With `title`, the editor tab of that title is
   * brought forward first; the webview returned is the visible one (hidden ones stay in the DOM).
   */
  async frameOfWebview(title?: string | RegExp): Promise<FrameLocator> {
    if (title !== undefined) {
      const label = this.page.locator('.label-name', { hasText: exact(title) });
      await this.page.locator('.part.editor .tabs-container .tab').filter({ has: label }).first().click();
    }
    const outer = this.page.locator('iframe.webview.ready').filter({ visible: true }).first();
    await outer.waitFor({ state: 'visible' });
    const inner = outer.contentFrame().locator('iframe#active-frame');
    await inner.waitFor({ state: 'attached' });
    return inner.contentFrame();
  }

  /** A full-window PNG in test-artifacts/e2e/; returns its path. */
  async screenshot(name: string): Promise<string> {
    mkdirSync(ARTIFACTS, { recursive: true });
    const path = join(ARTIFACTS, `${this.options.name}-${name}.png`);
    // Toasts and panels slide in: finish their transitions rather than catch them half-way.
    await this.page.screenshot({ path, animations: 'disabled' });
    return path;
  }

  /** Idempotent; never throws for a browser that is already gone. */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const context = this.context;
    if (context) {
      // A wedged browser must not hang the suite: the process-tree kill below ends it anyway.
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise((r) => (timer = setTimeout(r, 5_000)));
      await Promise.race([context.close().catch(() => undefined), timeout]);
      clearTimeout(timer);
    }
    try {
      await killSessionAndWait(this.server?.pid, this.marker);
    } finally {
      process.removeListener('exit', this.onExit);
      process.removeListener('SIGINT', this.onSignal);
      process.removeListener('SIGTERM', this.onSignal);
      this.keepLogs();
      if (process.env.STEELSCOPE_E2E_KEEP !== '1') rmSync(this.tmp, { recursive: true, force: true });
    }
  }

  /** code-server's own output, VS Code's logs (extension host included), browser console errors. */
  private keepLogs(): void {
    const dest = join(ARTIFACTS, `${this.options.name}-logs`);
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(dest, { recursive: true });
    const serverLog = join(this.tmp, 'code-server.log');
    if (existsSync(serverLog)) cpSync(serverLog, join(dest, 'code-server.log'));
    const vscodeLogs = join(this.userData, 'logs');
    if (existsSync(vscodeLogs)) cpSync(vscodeLogs, join(dest, 'vscode'), { recursive: true });
    writeFileSync(join(dest, 'browser-console-errors.log'), this.consoleErrors.join('\n') + '\n');
  }
}

/** Calls `read` until `ok` accepts its value (polling every 250 ms); returns that value. */
export async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`e2e: condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Starts a session; on any failure on the way it is shut down again before the error is thrown. */
export async function startVSCode(options: StartOptions): Promise<VSCodeSession> {
  const session = new VSCodeSession(options);
  try {
    await session.start();
    return session;
  } catch (e) {
    await session.shutdown();
    throw e;
  }
}

/** startVSCode + body + shutdown; a failure leaves a '<name>-failure.png' screenshot behind. */
export async function withVSCode<T>(options: StartOptions, body: (vs: VSCodeSession) => Promise<T>): Promise<T> {
  const vs = await startVSCode(options);
  try {
    return await body(vs);
  } catch (e) {
    await vs.screenshot('failure').catch(() => undefined);
    throw e;
  } finally {
    await vs.shutdown();
  }
}

/** The model and data of a run `trainWithCli` trains: the sizes tests use unless they need others. */
export interface CliTraining {
  steps: number;
  /** Its `--set key=value` flags; SMALL_SETS unless given. */
  sets?: string[];
  /** How many poems of the corpus it trains on. */
  poems?: number;
}

/**
 * Trains `run` to the end with the CLI into the session's runs folder (before the workbench opens,
 * a few seconds), so a test starts from a finished run; returns its folder.
 */
export function trainWithCli(vs: VSCodeSession, run: string, training: CliTraining): string {
  const runDir = join(vs.runsRoot, run);
  const data = poetrySubset(vs.tmp, training.poems ?? 300);
  const steps = String(training.steps);
  const sets = training.sets ?? SMALL_SETS;
  const trained = runCli(['train', '--data', data, '--run-dir', runDir, '--name', run, '--steps', steps, ...sets]);
  assert.equal(trained.code, 0, trained.stderr);
  return runDir;
}

/** The runs folder of the test sshd's host: its login user is this one, so it is this machine's own. */
export const SSHD_RUNS = join(homedir(), '.steelscope', 'runs');

/** A HOME whose ~/.ssh/config names the test server as `host`; known_hosts starts empty. */
export function sshHome(sshd: TestSshd, host: string): string {
  const home = scratch('e2e-home');
  mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  const config = [
    `Host ${host}`,
    '  HostName 127.0.0.1',
    `  Port ${sshd.port}`,
    '  User root',
    `  IdentityFile ${sshd.clientKey}`,
    '  IdentitiesOnly yes',
    '',
  ];
  writeFileSync(join(home, '.ssh', 'config'), config.join('\n'), { mode: 0o600 });
  return home;
}

/** "Add SSH Host…" → `host` → its unknown key shown (screenshot 'host-key') → Trust and Connect → ready. */
export async function addSshHost(vs: VSCodeSession, host: string): Promise<void> {
  await vs.runCommand('Steelscope: Add SSH Host…');
  await vs.pickItem(host);
  const trust = vs.page.getByRole('button', { name: 'Trust and Connect' });
  await trust.waitFor({ state: 'visible', timeout: 60_000 });
  await vs.screenshot('host-key');
  await trust.click();
  await vs.notificationText(new RegExp(`${host} is ready`));
}

/** Removes what a test's run `run` left in SSHD_RUNS (its folders and hidden reservations), so runs do not pile up. */
export function removeSshdRuns(run: string): void {
  for (const name of existsSync(SSHD_RUNS) ? readdirSync(SSHD_RUNS) : []) {
    if (name.startsWith(run) || name.startsWith(`.${run}`))
      rmSync(join(SSHD_RUNS, name), { recursive: true, force: true });
  }
}

// Steelscope's own steps, shared by the scenario tests.

/** The choices of "Steelscope: Start Training…"; every step but steps and name has the default a test mostly wants. */
export interface TrainingChoices {
  /** The row of "where should it run?" (default /This machine/; an SSH host by its name). */
  target?: string | RegExp;
  engine?: 'bundled' | 'pytorch';
  /** PyTorch only: the processes (or GPUs) row (default /1 process/). */
  processes?: string | RegExp;
  /** The model preset (default 'tiny'). */
  preset?: string | RegExp;
  /** The training data row (default /Classical Chinese poetry/). */
  data?: string | RegExp;
  steps: number;
  name: string;
  /**
   * Further prompts the walk meets (a Slurm host's partition or nodes, an eval set, the checkpoint
   * to fine-tune from), answered by title wherever they come; each must be shown.
   */
  prompts?: readonly Prompt[];
}

/** The answers of Start Training's steps; without a name, the walk is left at the step after steps. */
export function trainingPrompts(choices: Omit<TrainingChoices, 'name'> & { name?: string }): Prompt[] {
  const torch = choices.engine === 'pytorch';
  return [
    ...(choices.prompts ?? []),
    { title: /: where should it run\?$/, answer: choices.target ?? /This machine/ },
    { title: /: engine$/, answer: torch ? /PyTorch/ : /Bundled/ },
    ...(torch ? [{ title: /\(torchrun\)$/, answer: choices.processes ?? /1 process/ }] : []),
    { title: /: model preset$/, answer: choices.preset ?? 'tiny' },
    { title: /: training data$/, answer: choices.data ?? /Classical Chinese poetry/ },
    { title: /: steps$/, answer: { type: String(choices.steps) } },
    ...(choices.name !== undefined ? [{ title: /: run name/, answer: { type: choices.name } }] : []),
  ];
}

/** Runs "Steelscope: Start Training…" and answers its steps; returns the run's name. */
export async function startTraining(vs: VSCodeSession, choices: TrainingChoices): Promise<string> {
  await vs.runCommand('Steelscope: Start Training…');
  await vs.answerPrompts(trainingPrompts(choices));
  return choices.name;
}

/** A Slurm job as Start Training asks for it on a login node (src/host/commands/slurmPick.ts). */
export interface SlurmChoices {
  partition: string;
  nodes?: number;
  /** Asked only on a partition with GPUs. */
  gpusPerNode?: number;
  /** Slurm's time format; '' for the partition's limit. */
  timeLimit?: string;
}

/**
 * The Slurm steps of Start Training, for startTraining's `prompts`: partition, nodes, GPUs per node
 * (a partition with GPUs only), time limit. A cluster without accounting asks no account or QoS.
 */
export function slurmPrompts(job: SlurmChoices): Prompt[] {
  return [
    { title: /^Slurm job on .*: partition$/, answer: job.partition },
    { title: /^Slurm job on .*: nodes$/, answer: { type: String(job.nodes ?? 1) } },
    ...(job.gpusPerNode === undefined
      ? []
      : [{ title: /^Slurm job on .*: GPUs per node$/, answer: { type: String(job.gpusPerNode) } }]),
    { title: /^Slurm job on .*: time limit$/, answer: { type: job.timeLimit ?? '' } },
  ];
}

/** The number of points the dashboard's loss chart draws now (0 before it is drawn). */
export async function lossPoints(dashboard: FrameLocator): Promise<number> {
  const points = await dashboard
    .locator('canvas[data-chart="loss"]')
    .getAttribute('data-points', { timeout: 5_000 })
    .catch(() => null);
  return Number(points ?? '0');
}

/**
 * Waits for the loss chart to draw at least 2 points, then for more (a live run's records keep
 * arriving); returns both counts.
 */
export async function lossPointsGrow(dashboard: FrameLocator): Promise<{ first: number; later: number }> {
  const first = await eventually(
    () => lossPoints(dashboard),
    (n) => n >= 2,
    180_000,
  );
  const later = await eventually(
    () => lossPoints(dashboard),
    (n) => n > first,
    120_000,
  );
  return { first, later };
}

/** Waits for the Runs view to show `run` with a status matching `status`; returns the rows then. */
export function runWithStatus(vs: VSCodeSession, run: string, status: RegExp, timeoutMs = 120_000): Promise<TreeRow[]> {
  return eventually(
    () => vs.treeItems('Steelscope', 'Runs', 0),
    (rows) => rows.some((r) => r.label === run && status.test(r.description)),
    timeoutMs,
  );
}

/** "Steelscope: Stop Run" on `run`, then waits for the Runs view to show it stopped. */
export async function stopRun(vs: VSCodeSession, run: string, timeoutMs = 120_000): Promise<TreeRow[]> {
  await vs.runCommand('Steelscope: Stop Run');
  await vs.pickItem(run);
  return runWithStatus(vs, run, /stopped/, timeoutMs);
}

/**
 * The text of the first chat answer in `chat` once it has finished streaming; fails with the
 * answer's note when it ended in an error.
 */
export async function finishedAnswer(chat: FrameLocator, timeoutMs: number): Promise<string> {
  const answer = chat.locator('.chat-answer').first();
  await chat.locator('.chat-answer:not([data-status=streaming])').first().waitFor({ timeout: timeoutMs });
  if ((await answer.getAttribute('data-status')) === 'error')
    throw new Error(`e2e: the chat answer failed: ${(await answer.locator('.chat-answer-note').textContent()) ?? ''}`);
  return (await answer.locator('.chat-answer-text').textContent()) ?? '';
}
