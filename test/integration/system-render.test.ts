// The dashboard's System section in a real browser: system.jsonl records made by the trainer's own
// sampler with a fake `nvidia-smi` on PATH (fixed CSV), read into the run's tables as the tracker
// does, charted by the real host model and webview; a run without system.jsonl has no section.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { startSystemSampler } from '../../src/core/train/system';
import { DashboardModel } from '../../src/host/panels/dashboardModel';
import { appendRecord, appendSystemRecord, kindOf, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { RunData } from '../../src/host/runs/types';
import { DEFAULT_VIEW } from '../../src/shared/protocol';
import type { MetricRecord } from '../../src/shared/run';
import { SYSTEM_KIND, type SystemRecord } from '../../src/shared/system';
import { ROOT, scratch } from '../helpers';
import { NVIDIA_SMI_OUTPUT } from '../nvidia-smi';
import { localRun, postToWebview, skipWithoutChromium, storeOf, withDashboard } from './dashboard-page';

const skip = skipWithoutChromium;

/** Three records from the real sampler, with `nvidia-smi` on PATH printing the documented CSV. */
async function sampledRecords(): Promise<SystemRecord[]> {
  const bin = join(scratch('system-render'), 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'gpus.csv'), NVIDIA_SMI_OUTPUT);
  writeFileSync(join(bin, 'nvidia-smi'), `#!/bin/sh\ncat '${join(bin, 'gpus.csv')}'\n`);
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path ?? ''}`;
  const keepAlive = setInterval(() => undefined, 1000); // the sampler's timer alone does not hold the process
  try {
    return await new Promise<SystemRecord[]>((done) => {
      const records: SystemRecord[] = [];
      const sampler = startSystemSampler(
        (r) => {
          records.push(r);
          if (records.length === 3) {
            sampler.stop();
            done(records);
          }
        },
        () => 0,
        { intervalMs: 100 },
      );
    });
  } finally {
    clearInterval(keepAlive);
    process.env.PATH = path;
  }
}

function run(key: string, system: SystemRecord[]): RunData {
  const data = localRun(key, 'running');
  // Train steps every 50 ms across the sampled period: the system rows land on steps by time.
  const t0 = system.length ? system[0].t : 1.7e12;
  for (let s = 0; s < 20; s++) {
    const r: MetricRecord = {
      step: s,
      t: t0 + s * 50,
      kind: 'train',
      loss: 4 - s / 10,
      lr: 1e-3,
      grad_norm: 1,
      tokens: s * 100,
      tok_per_s: 1000,
    };
    if (!data.tables.has(kindOf(r))) data.tables.set(kindOf(r), newSeriesTable(kindOf(r)));
    appendRecord(data.tables.get(kindOf(r))!, r);
  }
  if (system.length) {
    const table = newSeriesTable(SYSTEM_KIND);
    for (const r of system) appendSystemRecord(table, { ...r, step: undefined }); // a foreign writer's: no step
    data.tables.set(SYSTEM_KIND, table);
  }
  return data;
}

async function charts(page: Page): Promise<Record<string, { label: string; points: number; xs: number[] }[]>> {
  return page.evaluate(() => {
    type C = { data: { datasets: { label?: string; data: { x: number }[] }[] } };
    const all = (window as unknown as { __steelscopeCharts: Record<string, C> }).__steelscopeCharts;
    return Object.fromEntries(
      Object.entries(all).map(([k, c]) => [
        k,
        c.data.datasets.map((d) => ({ label: d.label ?? '', points: d.data.length, xs: d.data.map((p) => p.x) })),
      ]),
    );
  });
}

test(
  'System section: CPU, RSS, host memory and each GPU fake nvidia-smi reported, on the step axis by time; none without system.jsonl',
  { skip, timeout: 60_000 },
  async () => {
    const records = await sampledRecords();
    const withSystem = run('local::/runs/gpu-run', records);
    const without = run('local::/runs/plain', []);
    const store = storeOf(withSystem, without);
    await withDashboard(async ({ page, refused }) => {
      const painted = () =>
        page.waitForFunction(
          () => (window as unknown as { __steelscopePainted?: number }).__steelscopePainted !== undefined,
        );

      // Only the run without system.jsonl: no System heading, no system chart.
      await postToWebview(page, new DashboardModel(store, [without.summary.key], DEFAULT_VIEW).snapshot());
      await painted();
      assert.equal(await page.locator('.charts-section').count(), 0);
      assert.deepEqual(
        Object.keys(await charts(page)).filter((k) => k.startsWith('system/')),
        [],
      );

      const model = new DashboardModel(store, [withSystem.summary.key, without.summary.key], DEFAULT_VIEW);
      await postToWebview(page, model.snapshot());
      await page.locator('.charts-section').waitFor();
      assert.equal(await page.locator('.charts-section').textContent(), 'System');
      const shown = await charts(page);
      for (const key of [
        'system/cpu',
        'system/rss',
        'system/host_mem',
        'system/gpu_util',
        'system/gpu_mem',
        'system/gpu_power',
        'system/gpu_temp',
      ]) {
        assert.ok(
          shown[key]?.some((d) => d.points === 3),
          `${key}: ${JSON.stringify(shown[key])}`,
        );
      }
      const labels = (key: string) => [...new Set(shown[key].map((d) => d.label))]; // raw and smoothed share one
      assert.deepEqual(
        labels('system/gpu_util'),
        ['gpu-run · gpu0/util_pct', 'gpu-run · gpu2/util_pct', 'gpu-run · gpu3/util_pct'],
        'the A100 in MIG mode reports none',
      );
      assert.deepEqual(
        labels('system/gpu_power'),
        ['gpu-run · gpu0/power_w', 'gpu-run · gpu3/power_w'],
        '[N/A] and [Not Supported] are gaps',
      );
      assert.equal(labels('system/gpu_mem').length, 8, 'used and total of four GPUs');
      // Step axis: each sample sits at the train step nearest in time (steps every 50 ms, samples every 100 ms).
      const xs = shown['system/cpu'][0].xs;
      const expected = records.map((r) => Math.min(19, Math.round((r.t - records[0].t) / 50)));
      for (const [i, x] of xs.entries())
        assert.ok(Math.abs(x - expected[i]) <= 1, `sample ${i} at step ${x}, expected about ${expected[i]}`);
      // The System heading comes after every training chart.
      const order = await page
        .locator('.charts > *')
        .evaluateAll((els) =>
          els.map((e) => (e.tagName === 'H2' ? 'H2' : (e.querySelector('canvas')?.dataset.chart ?? ''))),
        );
      const heading = order.indexOf('H2');
      assert.ok(
        order.slice(0, heading).every((k) => !k.startsWith('system/')) &&
          order.slice(heading + 1).every((k) => k.startsWith('system/')),
        order.join(' '),
      );

      // Wall-time axis: the samples keep their own times.
      model.setView({ xAxis: 'wall' });
      await postToWebview(page, model.next()!);
      await page.waitForFunction((t) => {
        const c = (
          window as unknown as {
            __steelscopeCharts: Record<string, { data: { datasets: { data: { x: number }[] }[] } }>;
          }
        ).__steelscopeCharts['system/cpu'];
        return c?.data.datasets[0]?.data[0]?.x === t;
      }, records[0].t);
      // An alert rule set on the dashboard: the form sends the panel's rules with the new one; the
      // host's answer is listed with a Remove button.
      await postToWebview(page, { type: 'alertRules', rules: [] });
      await page
        .locator('.alert-rule-form vscode-dropdown')
        .first()
        .evaluate((d: HTMLElement & { value: string }) => {
          d.value = 'train/grad_norm';
          d.dispatchEvent(new Event('change'));
        });
      await page.locator('.alert-rule-form vscode-text-field input').fill('10');
      await page.locator('.alert-rule-form vscode-button', { hasText: 'Add alert' }).click();
      await page.waitForFunction(() =>
        (window as unknown as { __posted: { type: string }[] }).__posted.some((m) => m.type === 'setAlertRules'),
      );
      const sent = (await page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted)).filter(
        (m) => m.type === 'setAlertRules',
      );
      const rule = { kind: 'train', field: 'grad_norm', op: 'above', value: 10, scale: 'absolute' };
      assert.deepEqual(sent, [{ type: 'setAlertRules', rules: [rule] }]);
      await postToWebview(page, {
        type: 'alertRules',
        rules: [{ ...rule, op: 'above' as const, scale: 'absolute' as const }],
      });
      await page.locator('.alert-rule', { hasText: 'grad_norm > 10' }).waitFor();

      mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
      await page.screenshot({ path: join(ROOT, 'test-artifacts', 'dashboard-system.png'), fullPage: true });
      assert.deepEqual(refused, []);
    });
  },
);
