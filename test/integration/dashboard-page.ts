// Loads the built dashboard webview in Debian's Chromium (playwright-core) the way VS Code would:
// the real HTML shell with its CSP, the bundle built with its test hooks (dist-test/webview: the
// shipped dist/webview one without them), a stub of acquireVsCodeApi that records what the webview
// posts. Shared by the render tests and bench/dashboard.ts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { dashboardHtml } from '../../src/host/panels/dashboardHtml';
import type { RunData, RunStoreApi, RunSummary } from '../../src/host/runs/types';
import type { HostToWebview } from '../../src/shared/protocol';
import { CHROMIUM_ARGS } from '../helpers';

const ROOT = resolve(__dirname, '..', '..');
export const CHROMIUM = '/usr/bin/chromium';
const ORIGIN = 'https://steelscope-webview.test';
/** The dashboard bundle with its test hooks (scripts/build.mjs). */
export const TEST_BUNDLE = 'dist-test/webview';

/** A page with the dashboard loaded from the built bundle; every request outside it is refused and recorded. */
export interface OpenOptions {
  /** Runs once the page has its HTML and loads on its own (the host computing its snapshot meanwhile). */
  whileLoading?: () => void;
  /** Bundle and stylesheet as data: URLs (allowed by their nonce), so loading needs nothing from this process. */
  inline?: boolean;
  /** The folder holding dashboard.js and dashboard.css: TEST_BUNDLE unless the bench loads another build. */
  bundleDir?: string;
  /** Script run in the page before the bundle, after the acquireVsCodeApi stub. */
  initScript?: string;
}

const dataUrl = (file: string, type: string) => `data:${type};base64,${readFileSync(file).toString('base64')}`;
/**
 * The entry module as a data: URL: the chunks it imports (./chunks/…, scripts/build.mjs) are
 * named by their URL at the origin, as a data: URL has no folder to resolve them against.
 */
const inlineEntry = (file: string) => {
  const js = readFileSync(file, 'utf8').replaceAll('"./chunks/', `"${ORIGIN}/${TEST_BUNDLE}/chunks/`);
  return `data:text/javascript;base64,${Buffer.from(js).toString('base64')}`;
};

export async function openDashboard(
  browser: Browser,
  options: OpenOptions = {},
): Promise<{ page: Page; refused: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const refused: string[] = [];
  const bundleDir = options.bundleDir ?? join(ROOT, TEST_BUNDLE);
  const html = dashboardHtml({
    cspSource: ORIGIN,
    nonce: 'testnonce123',
    styleNonce: 'teststyles456',
    scriptUri: options.inline ? inlineEntry(join(bundleDir, 'dashboard.js')) : `${ORIGIN}/${TEST_BUNDLE}/dashboard.js`,
    styleUri: options.inline
      ? dataUrl(join(bundleDir, 'dashboard.css'), 'text/css')
      : `${ORIGIN}/${TEST_BUNDLE}/dashboard.css`,
    title: 'test',
  });
  await page.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.origin !== ORIGIN) {
      refused.push(url.href);
      return route.abort();
    }
    if (url.pathname === '/index.html') {
      await route.fulfill({ contentType: 'text/html', body: html });
      return options.whileLoading?.();
    }
    const file = join(bundleDir, url.pathname.slice(TEST_BUNDLE.length + 2));
    if (url.pathname.startsWith(`/${TEST_BUNDLE}/`) && existsSync(file)) {
      return route.fulfill({
        contentType: file.endsWith('.css') ? 'text/css' : 'text/javascript',
        body: readFileSync(file),
      });
    }
    refused.push(url.href);
    return route.abort();
  });
  // A string, not a function: the test's own transpiler may wrap functions in helpers the page lacks.
  await page.addInitScript(`
    const posted = [], postedAt = [], violations = [], alerts = [];
    let state;
    Object.assign(window, {
      __posted: posted, __postedAt: postedAt, __violations: violations, __alerts: alerts,
      alert: (m) => alerts.push(m),
      acquireVsCodeApi: () => ({
        postMessage: (m) => { posted.push(m); postedAt.push(performance.now()); },
        getState: () => state, setState: (s) => { state = s; },
      }),
    });
    document.addEventListener('securitypolicyviolation', (e) => violations.push(e.violatedDirective + ' ' + e.blockedURI));
  ${options.initScript ?? ''}`);
  page.on('pageerror', (e) => refused.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') refused.push(`console ${m.type()}: ${m.text()}`);
  });
  await page.goto(`${ORIGIN}/index.html`);
  return { page, refused };
}

export async function postToWebview(page: Page, message: HostToWebview): Promise<void> {
  await page.evaluate((m) => window.postMessage(m, '*'), JSON.parse(JSON.stringify(message)) as unknown);
}

/** Why a render test is skipped here: Chromium missing (CI must have it). */
export const skipWithoutChromium =
  !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} is missing (apt-get install chromium)` : false;

/** Runs `use` on the dashboard opened in a fresh headless Chromium, closed however `use` ends. */
export async function withDashboard(
  use: (opened: { page: Page; refused: string[] }) => Promise<void>,
  options: OpenOptions = {},
): Promise<void> {
  assert.ok(existsSync(join(ROOT, TEST_BUNDLE, 'dashboard.js')), 'run npm run build first');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    await use(await openDashboard(browser, options));
  } finally {
    await browser.close();
  }
}

/** A store that holds these runs and never changes. */
export function storeOf(...runs: RunData[]): RunStoreApi {
  const byKey = new Map(runs.map((r) => [r.summary.key, r]));
  return { runs: byKey, get: (k) => byKey.get(k), onDidChange: () => ({ dispose() {} }) };
}

/** A run of this machine at `key` ('local::/runs/<name>') holding nothing yet but what `data` gives. */
export function localRun(key: string, status: RunSummary['status'], data: Partial<RunData> = {}): RunData {
  const summary: RunSummary = {
    key,
    hostId: 'local',
    hostLabel: 'this machine',
    dir: key.slice('local::'.length),
    name: key.slice('local::/runs/'.length),
    status,
    checkpoints: [],
    malformed: { metrics: 0, samples: 0, events: 0 },
  };
  return { summary, tables: new Map(), samples: [], events: [], evals: [], ...data };
}
