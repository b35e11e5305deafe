// The dashboard webview in a real browser (Debian's Chromium via playwright-core): the built
// bundle, the real HTML shell with its CSP, a stub of acquireVsCodeApi, and host messages made by
// the real host model. Needs `npm run build` first (npm test runs it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { ROOT } from '../helpers';
import { postToWebview, skipWithoutChromium, storeOf, TEST_BUNDLE, withDashboard } from './dashboard-page';
import { DashboardModel } from '../../src/host/panels/dashboardModel';
import { appendRecord, kindOf, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunData, RunStoreApi } from '../../src/host/runs/types';
import { checkWebviewMessage, DEFAULT_VIEW } from '../../src/shared/protocol';
import { pngBytes } from '../../src/host/panels/chartPng';
import type { MetricRecord } from '../../src/shared/run';

const XSS = '<img src=x onerror=alert(1)>';
const skip = skipWithoutChromium;

function fixture(
  key = 'local::/runs/a',
  name = 'run-a',
  scale = 1,
): { store: RunStoreApi; data: RunData; add: (from: number, to: number) => Map<string, number> } {
  const data: RunData = {
    summary: {
      checkpoints: [
        { step: 200, dir: `${key.slice(7)}/checkpoints/step-00000200`, evalLoss: 2.5, best: true, complete: true },
        { step: 300, dir: `${key.slice(7)}/checkpoints/step-00000300`, evalLoss: null, best: false, complete: false },
      ],
      key,
      hostId: 'local',
      hostLabel: 'this machine',
      dir: key.slice(7),
      name,
      status: 'running',
      config: { grad_clip: 1 } as never,
      malformed: { metrics: 3, samples: 0, events: 1 },
    },
    tables: new Map(),
    samples: [
      { step: 100, t: 1, prompt: '春眠', text: '春眠不覺曉', temperature: 0.8, top_k: 40, top_p: 0.9, seed: 1 },
      { step: 200, t: 2, prompt: '春眠', text: XSS, temperature: 0.8, top_k: 40, top_p: 0.9, seed: 1 },
    ],
    events: [
      { step: 150, t: 0, kind: 'spike', level: 'warning', message: 'loss spike 3.2x' },
      { step: 200, t: 0, kind: 'checkpoint', level: 'info', message: 'saved step-00000200' },
      { step: 250, t: 0, kind: 'resume', level: 'info', message: 'resumed' },
    ],
    evals: [],
  };
  const add = (from: number, to: number) => {
    const changed = new Map<string, number>();
    for (let s = from; s < to; s++) {
      const recs: MetricRecord[] = [
        {
          step: s,
          t: 1.7e12 + s * 500,
          kind: 'train',
          loss: s === 77 && scale === 1 ? 'NaN' : scale * (4 / (1 + s / 200) + 0.2 * Math.sin(s)),
          lr: 1e-3,
          grad_norm: 0.5 + Math.abs(Math.cos(s)),
          tokens: s * 1024,
          tok_per_s: 2000 + s,
          my_metric: s % 10,
        },
      ];
      if (s % 100 === 0) recs.push({ step: s, t: 1.7e12 + s * 500, kind: 'eval', loss: 4 / (1 + s / 250) });
      for (const r of recs) {
        const kind = kindOf(r);
        if (!data.tables.has(kind)) data.tables.set(kind, newSeriesTable(kind));
        const row = appendRecord(data.tables.get(kind)!, r);
        changed.set(kind, Math.min(changed.get(kind) ?? Infinity, row));
      }
    }
    return changed;
  };
  add(0, 3000);
  return { store: storeOf(data), data, add };
}

interface ChartProbe {
  key: string;
  datasets: { label: string; points: number; pointStyle: unknown; drawn: number; nonFinite: string[] }[];
}

async function probe(page: Page): Promise<ChartProbe[]> {
  return page.evaluate(() => {
    type C = {
      data: { datasets: { label?: string; data: { v?: string }[]; pointStyle?: unknown }[] };
      getDatasetMeta(i: number): { data: { x: number }[] };
    };
    const charts = (window as unknown as { __steelscopeCharts: Record<string, C> }).__steelscopeCharts;
    return Object.entries(charts).map(([key, c]) => ({
      key,
      datasets: c.data.datasets.map((d, i) => ({
        label: d.label ?? '',
        points: d.data.length,
        pointStyle: d.pointStyle ?? null,
        drawn: c.getDatasetMeta(i).data.filter((e) => Number.isFinite(e.x)).length,
        nonFinite: d.data.flatMap((p) => (p.v ? [p.v] : [])),
      })),
    }));
  });
}

test(
  'dashboard renders a snapshot, applies deltas, and asks for a snapshot after a gap',
  { skip, timeout: 60_000 },
  async () => {
    await withDashboard(async ({ page, refused }) => {
      await page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);
      assert.deepEqual(await page.evaluate(() => (window as unknown as { __posted: unknown[] }).__posted), [
        { type: 'ready', view: null },
      ]);

      const { store, add } = fixture();
      const other = fixture('local::/runs/b', 'run-b', 1.2);
      const both = storeOf(...store.runs.values(), ...other.store.runs.values());
      const model = new DashboardModel(both, ['local::/runs/a', 'local::/runs/b'], DEFAULT_VIEW);
      await postToWebview(page, model.snapshot());
      await page
        .waitForFunction(
          () => (window as unknown as { __steelscopePainted?: number }).__steelscopePainted !== undefined,
          null,
          { timeout: 10_000 },
        )
        .catch((e: Error) => {
          throw new Error(`${e.message}; page said: ${refused.join(' | ')}`);
        });

      const charts = await probe(page);
      const keys = charts.map((c) => c.key);
      for (const k of ['loss', 'grad_norm', 'lr', 'tok_per_s', 'my_metric'])
        assert.ok(keys.includes(k), `chart ${k} in ${keys}`);
      assert.equal(await page.locator('canvas').count(), charts.length);
      const loss = charts.find((c) => c.key === 'loss')!;
      assert.ok(
        loss.datasets.filter((d) => d.label.includes('loss') && d.points > 0 && d.drawn > 0).length >= 3,
        JSON.stringify(loss.datasets),
      );
      const markers = loss.datasets.find((d) => d.pointStyle === 'triangle');
      assert.deepEqual(markers?.nonFinite, ['NaN'], 'the NaN at step 77 is a marker');
      assert.equal(markers?.drawn, 1);

      const text = await page.locator('.sample-text').allTextContents();
      assert.deepEqual(text, [XSS], 'the newest sample per prompt, as text');
      assert.equal(await page.locator('.sample img, img').count(), 0, 'no element made from sample text');
      assert.match((await page.locator('.run-legend').textContent()) ?? '', /4 malformed lines skipped/);

      // The Checkpoints tab: every checkpoint of both runs in the toolkit's data grid.
      await page.locator('vscode-panel-tab', { hasText: 'Checkpoints' }).click();
      const rows = page.locator('.checkpoints vscode-data-grid-row');
      await rows.nth(4).waitFor();
      const cells = async (i: number) =>
        (await rows.nth(i).locator('vscode-data-grid-cell').allTextContents()).map((t) => t.trim());
      assert.deepEqual(await cells(0), ['Run', 'Step', 'Eval loss', 'Best', 'State']);
      assert.deepEqual(await cells(1), ['run-a', '200', '2.5000', '★', 'complete']);
      assert.deepEqual(await cells(4), ['run-b', '300', '—', '', 'incomplete']);
      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      await page
        .locator('.checkpoints')
        .screenshot({ path: join(ROOT, 'test-artifacts', 'dashboard-checkpoints.png') });
      await page.locator('vscode-panel-tab', { hasText: 'Samples' }).click();

      // Step slider back to the first sample step.
      await page.locator('.samples input[type=range]').fill('0');
      assert.deepEqual(await page.locator('.sample-text').allTextContents(), ['春眠不覺曉']);

      // A delta adds points.
      const lastX = await page.evaluate(() => {
        const c = (
          window as unknown as {
            __steelscopeCharts: Record<string, { data: { datasets: { data: { x: number }[] }[] } }>;
          }
        ).__steelscopeCharts.loss;
        return Math.max(...c.data.datasets.map((d) => d.data.at(-1)?.x ?? 0));
      });
      assert.equal(lastX, 2999);
      model.accept({ key: 'local::/runs/a', summaryChanged: false, tablesFrom: add(3000, 3100) });
      const delta = model.next();
      assert.equal(delta?.type, 'delta');
      await postToWebview(page, delta!);
      await page.waitForFunction(() => {
        const c = (
          window as unknown as {
            __steelscopeCharts: Record<string, { data: { datasets: { data: { x: number }[] }[] } }>;
          }
        ).__steelscopeCharts.loss;
        return c.data.datasets.some((d) => d.data.at(-1)?.x === 3099);
      });

      // Two runs overlaid, one colour each; the learning rate (a schedule) without a smoothed line.
      const colours = (chart: string) =>
        page.evaluate((key) => {
          const c = (
            window as unknown as {
              __steelscopeCharts: Record<string, { data: { datasets: { label?: string; borderColor?: unknown }[] } }>;
            }
          ).__steelscopeCharts[key];
          return c.data.datasets.map((d) => [d.label, d.borderColor]);
        }, chart);
      const gradColours = await colours('grad_norm');
      const colourOf = (run: string, list = gradColours) =>
        new Set(list.filter(([l]) => String(l).startsWith(run)).map(([, c]) => String(c)));
      assert.equal(colourOf('run-a').size, 2, 'raw (faint) and smoothed');
      assert.deepEqual(
        [...colourOf('run-a')].filter((c) => colourOf('run-b').has(c)),
        [],
        JSON.stringify(gradColours),
      );
      const lrColours = await colours('lr');
      assert.deepEqual(
        lrColours.map(([l]) => l),
        ['run-a · lr', 'run-b · lr'],
        'one unsmoothed line per run',
      );
      assert.equal(colourOf('run-a', lrColours).size, 1);

      // Drag across the loss chart: a zoom request with an x-range.
      await page.evaluate(() => window.scrollTo(0, 0)); // moving the sample slider scrolled the charts away
      const box = (await page.locator('canvas[data-chart=loss]').boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.3, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 5 });
      await page.mouse.up();

      // A delta that skips a number: the webview asks for a fresh snapshot.
      model.accept({ key: 'local::/runs/a', summaryChanged: false, tablesFrom: add(3100, 3110) });
      model.next();
      model.accept({ key: 'local::/runs/a', summaryChanged: false, tablesFrom: add(3110, 3120) });
      await postToWebview(page, model.next()!);
      await page.waitForFunction(() =>
        (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'requestSnapshot'),
      );
      const posted = await page.evaluate(
        () => (window as unknown as { __posted: { type: string; range?: [number, number] }[] }).__posted,
      );
      const zoom = posted.find((m) => m.type === 'zoom');
      assert.ok(
        zoom?.range && zoom.range[0] > 0 && zoom.range[1] > zoom.range[0] && zoom.range[1] < 3100,
        JSON.stringify(zoom),
      );

      // The host answers a zoom with a snapshot for that range: the charts show exactly it.
      model.setView({ range: [1000, 1500] });
      await postToWebview(page, model.next()!);
      await page.waitForFunction(() => {
        const c = (
          window as unknown as { __steelscopeCharts: Record<string, { scales: { x: { min: number; max: number } } }> }
        ).__steelscopeCharts.loss;
        return c.scales.x.min === 1000 && c.scales.x.max === 1500;
      });
      assert.equal(await page.locator('.toolbar vscode-button', { hasText: 'Reset zoom' }).isVisible(), true);

      // Save Chart as PNG: the webview sends the loss chart as a PNG the size of its canvas, on the theme's background.
      await page.locator('vscode-button[data-save=loss]').click();
      await page.waitForFunction(() =>
        (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'savePng'),
      );
      const saved = (await page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted)).find(
        (m) => m.type === 'savePng',
      );
      const checked = checkWebviewMessage(saved);
      assert.ok(
        checked.ok && checked.message.type === 'savePng' && checked.message.chart === 'loss',
        JSON.stringify(checked).slice(0, 300),
      );
      const png = pngBytes(checked.message.dataUrl);
      assert.ok(png.ok);
      const canvas = await page
        .locator('canvas[data-chart=loss]')
        .evaluate((c: HTMLCanvasElement) => [c.width, c.height]);
      const ihdr = Buffer.from(png.bytes.subarray(16, 24));
      assert.deepEqual([ihdr.readUInt32BE(0), ihdr.readUInt32BE(4)], canvas);
      const corner = await page
        .locator('canvas[data-chart=loss]')
        .evaluate((c: HTMLCanvasElement) => [...(c.getContext('2d')?.getImageData(1, 1, 1, 1).data ?? [])]);
      assert.equal(corner[3], 255, 'an opaque background, not a transparent one');

      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(ROOT, 'test-artifacts', 'dashboard.png'), fullPage: true });
      assert.deepEqual(await page.evaluate(() => (window as unknown as { __alerts: unknown[] }).__alerts), []);
      assert.deepEqual(
        await page.evaluate(() => (window as unknown as { __violations: string[] }).__violations),
        [],
        'no CSP violation',
      );
      assert.deepEqual(refused, [], 'no request outside the bundle');
    });
  },
);

test(
  "another logger's training loss (train/loss, train_loss) is drawn on the Loss chart; val_loss keeps its own",
  { skip, timeout: 60_000 },
  async () => {
    await withDashboard(async ({ page, refused }) => {
      // A TensorBoard-style run nests its loss ({"train": {"loss"}}: the series train/loss), a Lightning
      // CSV run writes train_loss beside val_loss; ours writes loss.
      const logs: [string, (step: number) => MetricRecord][] = [
        ['tb', (step) => ({ step, train: { loss: 3 - step / 100 } })],
        ['lightning', (step) => ({ step, train_loss: 2 - step / 100, val_loss: 2.5 })],
        ['ours', (step) => ({ step, kind: 'train', loss: 4 - step / 100 })],
      ];
      const store = storeOf(
        ...logs.map(([name, record]) => {
          const { data } = fixture(`local::/runs/${name}`, name);
          data.tables = new Map([['train', newSeriesTable('train')]]);
          for (let step = 0; step < 50; step++) appendRecord(data.tables.get('train')!, record(step));
          return data;
        }),
      );
      await postToWebview(page, new DashboardModel(store, [...store.runs.keys()], DEFAULT_VIEW).snapshot());
      await page
        .waitForFunction(
          () => (window as unknown as { __steelscopePainted?: number }).__steelscopePainted !== undefined,
        )
        .catch((e: Error) => {
          throw new Error(`${e.message}; page said: ${refused.join(' | ')}`);
        });
      const charts = (await probe(page)).filter((c) => c.key !== 'evals'); // the Evals section's own chart
      assert.deepEqual(charts.map((c) => c.key).sort(), ['loss', 'val_loss'], 'one Loss chart, val_loss beside it');
      const loss = charts.find((c) => c.key === 'loss')!;
      assert.deepEqual([...new Set(loss.datasets.filter((d) => d.drawn === 50).map((d) => d.label))].sort(), [
        'lightning · train_loss',
        'ours · loss',
        'tb · train/loss',
      ]);
    });
  },
);

test('the shipped dashboard bundle holds no test hooks; the test bundle has them', () => {
  const shipped = join(ROOT, 'dist/webview/dashboard.js');
  assert.ok(existsSync(shipped), 'run npm run build first');
  assert.doesNotMatch(readFileSync(shipped, 'utf8'), /__steelscope/);
  assert.match(readFileSync(join(ROOT, TEST_BUNDLE, 'dashboard.js'), 'utf8'), /__steelscopeCharts/);
});

test('the UI toolkit is in a chunk of its own that the entry imports only dynamically (after the first paint)', () => {
  for (const dir of ['dist/webview', TEST_BUNDLE]) {
    const entry = readFileSync(join(ROOT, dir, 'dashboard.js'), 'utf8');
    assert.doesNotMatch(entry, /FASTElement|design-unit/, `${dir}/dashboard.js holds the toolkit`);
    const chunk = /import\("\.\/(chunks\/toolkit-[\w-]+\.js)"\)/.exec(entry)?.[1];
    assert.ok(chunk, `${dir}/dashboard.js does not import the toolkit's chunk`);
    assert.match(readFileSync(join(ROOT, dir, chunk), 'utf8'), /FASTElement/);
  }
});
