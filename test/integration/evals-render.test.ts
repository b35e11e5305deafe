// The dashboard's Evals section in a real browser: evals.jsonl records as `steelscope eval` writes
// them (one per subject and a macro average per task and step), put through the real host model
// and webview. Accuracy with its 95% interval drawn as error bars, on the x axis the other charts
// use (tokens: the train record's count at each step, with the same axis title), the per-subject
// table at a step chosen in its dropdown (newest by default), a re-evaluation superseding, theme
// colours followed, and no section for a run without evals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { DashboardModel } from '../../src/host/panels/dashboardModel';
import { appendRecord, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunData } from '../../src/host/runs/types';
import { MACRO_SUBJECT, macroAverage, type EvalRecord } from '../../src/shared/eval';
import { DEFAULT_VIEW } from '../../src/shared/protocol';
import { ROOT } from '../helpers';
import { choose, optionTexts, valueOf } from '../toolkit-controls';
import { localRun, postToWebview, skipWithoutChromium, storeOf, withDashboard } from './dashboard-page';

const skip = skipWithoutChromium;

/** A finished run; its evals stay this array, which the test appends to. */
function run(key: string, evals: EvalRecord[]): RunData & { evals: EvalRecord[] } {
  return { ...localRun(key, 'finished'), evals };
}

/** The run's train records: steps 1..1,200 (every 100th and the first), 1,000 tokens a step. */
function train(data: RunData): void {
  const table = newSeriesTable('train');
  for (const step of [1, ...Array.from({ length: 12 }, (_, i) => (i + 1) * 100)])
    appendRecord(table, { step, t: 1.7e12 + step * 1000, kind: 'train', loss: 3 - step / 1000, tokens: step * 1000 });
  data.tables.set('train', table);
}

/** One evaluation of poetry-mc at `step`: two subjects of 200 questions and their macro average. */
function poetryMc(step: number, author: number, nextLine: number): EvalRecord[] {
  const subject = (name: string, acc: number): EvalRecord => ({
    step,
    t: 1.7e12 + step,
    task: 'poetry-mc',
    subject: name,
    n: 200,
    acc,
    stderr: Math.sqrt((acc * (1 - acc)) / 199),
  });
  const subjects = [subject('author', author), subject('next_line', nextLine)];
  return [
    ...subjects,
    { step, t: 1.7e12 + step, task: 'poetry-mc', subject: MACRO_SUBJECT, ...macroAverage(subjects) },
  ];
}

interface EvalChart {
  labels: string[];
  points: { x: number; y: number; lo?: number; hi?: number }[][];
  colors: string[];
  pointStyles: string[];
}

async function evalChart(page: Page): Promise<EvalChart & { xTitle: string }> {
  return page.evaluate(() => {
    type P = { x: number; y: number; lo?: number; hi?: number };
    type C = {
      data: { datasets: { label?: string; data: P[]; borderColor?: string; pointStyle?: string }[] };
      options: { scales: { x: { title: { text: string } } } };
    };
    const c = (window as unknown as { __steelscopeCharts: Record<string, C> }).__steelscopeCharts.evals;
    const ds = c.data.datasets;
    return {
      xTitle: c.options.scales.x.title.text,
      labels: ds.map((d) => d.label ?? ''),
      points: ds.map((d) => d.data.map((p) => ({ x: p.x, y: p.y, lo: p.lo, hi: p.hi }))),
      colors: ds.map((d) => String(d.borderColor)),
      pointStyles: ds.map((d) => String(d.pointStyle)),
    };
  });
}

/**
 * How far the canvas differs from its background along the upper half of a point's error bar
 * (between the cap at hi and just above the point's marker), per pixel row: the largest colour
 * distance over the bar's column and its neighbours (a 1 px line lands on a pixel boundary).
 */
async function barContrast(page: Page, dataset: number, index: number): Promise<number[]> {
  return page.evaluate(
    ([d, i]) => {
      type Scale = { getPixelForValue(v: number): number };
      type C = {
        canvas: HTMLCanvasElement;
        currentDevicePixelRatio: number;
        scales: { x: Scale; y: Scale };
        data: { datasets: { data: { x: number; y: number; hi: number }[] }[] };
      };
      const c = (window as unknown as { __steelscopeCharts: Record<string, C> }).__steelscopeCharts.evals;
      const p = c.data.datasets[d].data[i];
      const ratio = c.currentDevicePixelRatio;
      const ctx = c.canvas.getContext('2d')!;
      const px = Math.round(c.scales.x.getPixelForValue(p.x) * ratio);
      const top = Math.ceil(c.scales.y.getPixelForValue(p.hi) * ratio) + 1;
      const bottom = Math.floor((c.scales.y.getPixelForValue(p.y) - 5) * ratio);
      const bg = ctx.getImageData(2, 2, 1, 1).data;
      // One read of the bar's three columns (many small reads make Chromium warn).
      const area = ctx.getImageData(px - 1, top, 3, bottom - top + 1).data;
      const rows: number[] = [];
      for (let y = 0; y <= bottom - top; y++) {
        let most = 0;
        for (let k = 0; k < 3; k++) {
          const o = 4 * (3 * y + k);
          most = Math.max(
            most,
            Math.abs(area[o] - bg[0]) + Math.abs(area[o + 1] - bg[1]) + Math.abs(area[o + 2] - bg[2]),
          );
        }
        rows.push(most);
      }
      return rows;
    },
    [dataset, index],
  );
}

async function tableRows(page: Page): Promise<string[][]> {
  const rows = page.locator('.evals vscode-data-grid-row');
  const all: string[][] = [];
  for (let i = 0; i < (await rows.count()); i++)
    all.push((await rows.nth(i).locator('vscode-data-grid-cell').allTextContents()).map((t) => t.trim()));
  return all;
}

test(
  'Evals section: accuracy by step with 95% error bars, per-subject table, a re-evaluation supersedes, theme colours; none without evals',
  { skip, timeout: 60_000 },
  async () => {
    const cmmlu: EvalRecord[] = [
      { step: 600, t: 1, task: 'cmmlu', subject: 'chinese_history', n: 50, acc: 0.3, stderr: 0.065 },
      { step: 600, t: 1, task: 'cmmlu', subject: MACRO_SUBJECT, n: 50, acc: 0.3, stderr: 0.065 },
    ];
    const evaluated = run('local::/runs/evaluated', [
      ...poetryMc(0, 0.205, 0.33),
      ...poetryMc(600, 0.22, 0.25),
      ...poetryMc(1200, 0.3, 0.36),
      ...cmmlu,
    ]);
    train(evaluated);
    const plain = run('local::/runs/plain', []);
    const store = storeOf(evaluated, plain);
    await withDashboard(async ({ page, refused }) => {
      await page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);

      // A run without evals.jsonl: no Evals section.
      await postToWebview(page, new DashboardModel(store, [plain.summary.key], DEFAULT_VIEW).snapshot());
      await page.waitForFunction(
        () => (window as unknown as { __steelscopePainted?: number }).__steelscopePainted !== undefined,
      );
      assert.equal(await page.locator('.evals').isVisible(), false);

      const model = new DashboardModel(store, [evaluated.summary.key, plain.summary.key], DEFAULT_VIEW);
      await postToWebview(page, model.snapshot());
      await page.locator('.evals').waitFor();
      assert.equal(await page.locator('.evals h2').textContent(), 'Evals');
      const chart = await evalChart(page);
      assert.deepEqual(chart.labels, ['evaluated · poetry-mc', 'evaluated · cmmlu']);
      const average = poetryMc(1200, 0.3, 0.36)[2];
      assert.deepEqual(
        chart.points[0].map((p) => p.x),
        [0, 600, 1200],
        'one point per evaluated step, the macro average',
      );
      const last = chart.points[0][2];
      assert.equal(last.y, average.acc);
      assert.ok(Math.abs(last.lo! - (average.acc! - 1.96 * average.stderr!)) < 1e-12, JSON.stringify(last));
      assert.ok(Math.abs(last.hi! - (average.acc! + 1.96 * average.stderr!)) < 1e-12, JSON.stringify(last));
      assert.notEqual(chart.pointStyles[0], chart.pointStyles[1], 'tasks of a run told apart by point shape');
      // The error bar is drawn: every pixel row of its upper half stands out from the background.
      const bar = await barContrast(page, 0, 2);
      assert.ok(bar.length >= 10, `a bar of ${bar.length} px`);
      assert.ok(
        bar.every((d) => d > 60),
        `bar contrast by row: ${bar.join(' ')}`,
      );

      assert.equal(chart.xTitle, 'Step');

      // The table: each task's newest evaluated step, subjects then the average.
      const steps = page.locator('.evals vscode-dropdown');
      assert.deepEqual(await optionTexts(steps), ['1,200 (newest)', '600', '0']);
      // The toolkit's chunk loads after the first paint: the value is the component's once it has.
      await page.waitForFunction(
        () => document.querySelector<HTMLElement & { value?: string }>('.evals vscode-dropdown')?.value === '1200',
      );
      const rows = await tableRows(page);
      assert.deepEqual(rows[0], ['Run', 'Task', 'Subject', 'Step', 'n', 'Accuracy', '95% interval', 'acc_norm']);
      assert.deepEqual(rows.slice(1), [
        ['evaluated', 'cmmlu', 'chinese_history', '600', '50', '30.0%', '17.3% – 42.7%', '—'],
        ['evaluated', 'cmmlu', '(average)', '600', '50', '30.0%', '17.3% – 42.7%', '—'],
        ['evaluated', 'poetry-mc', 'author', '1,200', '200', '30.0%', '23.6% – 36.4%', '—'],
        ['evaluated', 'poetry-mc', 'next_line', '1,200', '200', '36.0%', '29.3% – 42.7%', '—'],
        ['evaluated', 'poetry-mc', '(average)', '1,200', '400', '33.0%', '28.4% – 37.6%', '—'],
      ]);
      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      await page.locator('.evals').screenshot({ path: join(ROOT, 'test-artifacts', 'dashboard-evals.png') });

      // Step 600 chosen: every task as evaluated at or before it (cmmlu's is at 600 too).
      await choose(steps, '600');
      await page.waitForFunction(
        () =>
          document.querySelectorAll('.evals vscode-data-grid-row').length === 6 &&
          document
            .querySelector('.evals vscode-data-grid-row:nth-child(4) vscode-data-grid-cell:nth-child(4)')
            ?.textContent?.trim() === '600',
      );
      assert.deepEqual(
        (await tableRows(page)).slice(3).map((r) => r.slice(2, 7)),
        [
          ['author', '600', '200', '22.0%', '16.2% – 27.8%'],
          ['next_line', '600', '200', '25.0%', '19.0% – 31.0%'],
          ['(average)', '600', '400', '23.5%', '19.3% – 27.7%'],
        ],
      );

      // The x axis the other charts use: tokens, each point at its step's train record, the same axis title.
      model.setView({ xAxis: 'tokens' });
      await postToWebview(page, model.next()!);
      await page.waitForFunction(() => {
        type C = { data: { datasets: { data: { x: number }[] }[] } };
        const c = (window as unknown as { __steelscopeCharts: Record<string, C> }).__steelscopeCharts.evals;
        return c.data.datasets[0]?.data[1]?.x === 600_000;
      });
      const onTokens = await evalChart(page);
      assert.equal(onTokens.xTitle, 'Tokens seen');
      assert.deepEqual(
        onTokens.points[0].map((p) => p.x),
        [0, 600_000, 1_200_000],
      );
      assert.equal(await valueOf(steps), '600', 'the chosen step stays');
      model.setView({ xAxis: 'step' });
      await postToWebview(page, model.next()!);
      await choose(steps, '1200'); // the newest again: the table follows new evaluations
      await page.waitForFunction(
        () =>
          document.querySelectorAll('.evals vscode-data-grid-row').length === 6 &&
          document
            .querySelector('.evals vscode-data-grid-row:nth-child(4) vscode-data-grid-cell:nth-child(4)')
            ?.textContent?.trim() === '1,200',
      );

      // Step 1,200 evaluated again (appended, as `steelscope eval` appends): the new score replaces the old.
      const from = evaluated.evals.length;
      evaluated.evals.push(...poetryMc(1200, 0.4, 0.5));
      model.accept({ key: evaluated.summary.key, summaryChanged: false, tablesFrom: new Map(), evalsFrom: from });
      const delta = model.next();
      assert.equal(delta?.type, 'delta');
      await postToWebview(page, delta!);
      await page.waitForFunction(() => {
        type C = { data: { datasets: { data: { y: number }[] }[] } };
        const c = (window as unknown as { __steelscopeCharts: Record<string, C> }).__steelscopeCharts.evals;
        return c.data.datasets[0].data.length === 3 && c.data.datasets[0].data[2].y === 0.45;
      });
      assert.deepEqual((await tableRows(page)).at(-1)?.slice(5, 6), ['45.0%']);

      // A theme change: the lines take the theme's new run colour.
      await page.evaluate(() => {
        document.documentElement.style.setProperty('--vscode-charts-blue', 'rgb(1, 2, 3)');
        document.body.classList.add('vscode-light');
      });
      await page.waitForFunction(() => {
        type C = { data: { datasets: { borderColor?: string }[] } };
        const c = (window as unknown as { __steelscopeCharts: Record<string, C> }).__steelscopeCharts.evals;
        return c.data.datasets[0].borderColor === 'rgb(1, 2, 3)';
      });

      // Save PNG sends the Evals chart to the host, drawn on the theme's background.
      await page.locator('vscode-button[data-save=evals]').click();
      await page.waitForFunction(() =>
        (window as unknown as { __posted: { type: string; chart?: string }[] }).__posted.some(
          (m) => m.type === 'savePng' && m.chart === 'evals',
        ),
      );

      // Hiding the run (its legend chip) hides its evals.
      await page.locator('.run-chip', { hasText: 'evaluated' }).click();
      await page.waitForFunction(() => !document.querySelector<HTMLElement>('.evals')?.checkVisibility());

      // Chromium's advice on this test's own pixel reads (barContrast) is no fault of the page.
      const faults = refused.filter((r) => !r.includes('willReadFrequently'));
      assert.deepEqual(faults, [], 'no request outside the bundle, no page error');
      assert.deepEqual(
        await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations),
        [],
        'no CSP violation',
      );
    });
  },
);
