// npm run bench:dashboard — a 1,000,000-step run in the dashboard.
//   1. writes metrics.jsonl (1M train records + an eval record every 100 steps) to a temp folder;
//   2. ingests it with the real RunStore (src/host/runs/store.ts), against a plain
//      readFile + split + JSON.parse loop over the same file in this process;
//      and a TensorBoard event file of as many records (bench/tfevents.ts) with the same store;
//   3. computes the chart payload (smoothing on full resolution, M4 to ~2,000 points);
//   4. opens the built webview in headless Chromium and times opening -> first chart paint,
//      against painting one series (train loss) at full resolution without downsampling;
//      then the bundle from before the UI toolkit against today's, loaded alternately (bundle-ab.ts):
//      size, start -> ready and ready -> paint of each;
//   5. appends 100,000 more records while the store tails the file: tail ingest rate, and the
//      cost of one dashboard delta at that size.
// Timings are figures for a report, never pass/fail.
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { computeChartPayload, DashboardModel } from '../src/host/panels/dashboardModel';
import { RunStore } from '../src/host/runs/store';
import type { RunChange, RunTarget } from '../src/host/runs/types';
import { DEFAULT_VIEW, type HostToWebview } from '../src/shared/protocol';
import { compareBundles } from './bundle-ab';
import { benchEventFileIngest } from './tfevents';
import { CHROMIUM_ARGS } from '../test/helpers';
import { CHROMIUM, openDashboard } from '../test/integration/dashboard-page';

const STEPS = Number(process.env.BENCH_STEPS ?? 1_000_000);
const TAIL = Math.min(100_000, STEPS / 10);
const T0 = 1.7e12;

function lines(from: number, to: number): string {
  const out: string[] = [];
  for (let s = from; s < to; s++) {
    const loss = s === 424_242 ? '"NaN"' : (3 / (1 + s / 20_000) + 0.1 * Math.sin(s / 7)).toFixed(6);
    out.push(
      `{"step":${s},"t":${T0 + s * 250},"kind":"train","loss":${loss},"lr":${(3e-4 * Math.min(1, s / 2000)).toExponential(6)},"grad_norm":${(0.8 + 0.4 * Math.abs(Math.sin(s / 13))).toFixed(5)},"tokens":${s * 4096},"tok_per_s":${16000 + (s % 97)},"step_ms":${250 + (s % 11)}}`,
    );
    if (s % 100 === 0)
      out.push(`{"step":${s},"t":${T0 + s * 250 + 10},"kind":"eval","loss":${(3.1 / (1 + s / 25_000)).toFixed(6)}}`);
  }
  return out.join('\n') + '\n';
}

function writeRun(dir: string): void {
  writeFileSync(
    join(dir, 'run.json'),
    JSON.stringify({
      format: 'steelscope.run/1',
      id: 'bench',
      name: 'bench-1m',
      createdAt: new Date(T0).toISOString(),
      host: 'bench',
      pid: 0,
      status: 'finished',
      step: STEPS - 1,
      config: { grad_clip: 1 },
      backend: { name: 'none', skipped: [] },
      data: { input: 'none', files: [] },
      resumes: [],
      exit: null,
    }),
  );
  writeFileSync(join(dir, 'metrics.jsonl'), '');
  for (let s = 0; s < STEPS; s += 50_000)
    appendFileSync(join(dir, 'metrics.jsonl'), lines(s, Math.min(STEPS, s + 50_000)));
  writeFileSync(
    join(dir, 'samples.jsonl'),
    [1000, 500_000, 999_000]
      .map((step) =>
        JSON.stringify({
          step,
          t: T0,
          prompt: '春',
          text: '春眠不覺曉',
          temperature: 0.8,
          top_k: 40,
          top_p: 0.9,
          seed: 1,
        }),
      )
      .join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'events.jsonl'),
    [
      [424_242, 'nan'],
      [300_000, 'spike'],
      [600_000, 'resume'],
    ]
      .map(([step, kind]) =>
        JSON.stringify({ step, t: T0 + Number(step) * 250, kind, level: 'warning', message: String(kind) }),
      )
      .join('\n') + '\n',
  );
}

function plainParse(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) if (line && typeof JSON.parse(line) === 'object') n++;
  return n;
}

/** The store only reads through a target's id; nothing is started or stopped here. */
const benchTarget: RunTarget = {
  id: 'bench',
  label: 'bench',
  listRunDirs: async () => [],
  start: () => Promise.reject(new Error('not in the bench')),
  stop: async () => {},
  resume: async () => {},
  delete: async () => {},
  planDelete: () => Promise.reject(new Error('not in the bench')),
  isAlive: async () => false,
  findTorch: async () => ({ reason: 'not in the bench' }),
  runCli: () => Promise.reject(new Error('not in the bench')),
};

function computeChartPayloadMessage(model: DashboardModel): HostToWebview {
  model.prepare();
  return model.snapshot();
}

const ms = (a: number, b: number) => `${(b - a).toFixed(0)} ms`;
const rate = (n: number, t: number) => `${Math.round(n / (t / 1000)).toLocaleString('en-US')} records/s`;

async function main(): Promise<void> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing`);
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-bench-'));
  const store = new RunStore({ flushMs: 150 });
  try {
    let t = performance.now();
    writeRun(dir);
    const text = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
    const records = STEPS + STEPS / 100;
    console.log(
      `metrics.jsonl: ${records.toLocaleString('en-US')} records, ${(text.length / 2 ** 20).toFixed(0)} MiB, written in ${ms(t, performance.now())}`,
    );

    t = performance.now();
    plainParse(text);
    const plainMs = performance.now() - t;
    t = performance.now();
    const key = store.addRun(benchTarget, dir);
    await store.whenIdle();
    const ingestMs = performance.now() - t;
    const data = store.get(key);
    if (!data || data.tables.get('train')?.length !== STEPS)
      throw new Error(`ingest incomplete: ${data?.tables.get('train')?.length} rows`);
    console.log(
      `initial ingest (RunStore): ${rate(records, ingestMs)} (${ingestMs.toFixed(0)} ms); plain JSON.parse loop: ${rate(records, plainMs)} — ratio ${(plainMs / ingestMs).toFixed(2)}`,
    );
    console.log(await benchEventFileIngest(STEPS));

    t = performance.now();
    const payload = computeChartPayload(data, DEFAULT_VIEW);
    const payloadMs = performance.now() - t;
    const bytes = JSON.stringify(payload).length;
    const points = payload.series.reduce(
      (n, s) => n + s.raw.x.length + (s.smooth?.x.length ?? 0) + s.markers.x.length,
      0,
    );
    console.log(
      `chart payload: ${payload.series.length} series, ${points.toLocaleString('en-US')} points, ${(bytes / 1024).toFixed(0)} KiB, computed in ${payloadMs.toFixed(0)} ms`,
    );

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const model = new DashboardModel(store, [key], DEFAULT_VIEW);
      // As the panel does: the snapshot is computed while the page loads, and posted on "ready".
      const open = async (message: () => HostToWebview) => {
        const start = performance.now();
        let m: HostToWebview | undefined;
        let computeMs = 0;
        const { page, refused } = await openDashboard(browser, {
          inline: true,
          whileLoading: () => {
            const c = performance.now();
            m = message();
            computeMs = performance.now() - c;
          },
        });
        await page.waitForFunction(() => (window as unknown as { __posted: unknown[] }).__posted.length > 0);
        const ready = performance.now();
        // Post and wait inside the page, so the webview's own time is known apart from the
        // test driver's transfer of the message (VS Code's postMessage is much cheaper).
        const inPage = await page.evaluate(
          async (message) => {
            const w = window as unknown as { __steelscopePainted?: number };
            const t0 = performance.now();
            window.postMessage(message, '*');
            while (w.__steelscopePainted === undefined) await new Promise((r) => setTimeout(r, 2));
            return w.__steelscopePainted - t0;
          },
          JSON.parse(JSON.stringify(m)) as unknown,
        );
        const painted = performance.now();
        if (refused.length) throw new Error(`page: ${refused.join(' | ')}`);
        await page.close();
        return { ready: ready - start, compute: computeMs, paint: painted - ready, inPage, total: painted - start };
      };
      await open(() => computeChartPayloadMessage(model)); // warm-up: Chromium's first page pays for its own start
      const down = await open(() => computeChartPayloadMessage(model));
      console.log(
        `open -> first chart paint (downsampled, all series): ${down.total.toFixed(0)} ms (page load to ready ${down.ready.toFixed(0)} ms, with the host's snapshot ${down.compute.toFixed(0)} ms computed meanwhile; ready to painted ${down.paint.toFixed(0)} ms, of which in the page ${down.inPage.toFixed(0)} ms: check, apply, draw)`,
      );
      const full = computeChartPayload(data, { ...DEFAULT_VIEW, smoothing: 0 }, { maxPoints: Number.MAX_SAFE_INTEGER });
      const lossOnly = { ...full, series: full.series.filter((s) => s.kind === 'train' && s.field === 'loss') };
      const base = await open(() => ({
        type: 'snapshot',
        seq: 1,
        view: { ...DEFAULT_VIEW, smoothing: 0 },
        maxPoints: Number.MAX_SAFE_INTEGER,
        keys: [lossOnly.header.key],
        runs: [lossOnly],
      }));
      console.log(
        `baseline, one series at full resolution (${lossOnly.series[0].raw.x.length.toLocaleString('en-US')} points, no downsampling): ${base.total.toFixed(0)} ms (ready to painted ${base.paint.toFixed(0)} ms, in the page ${base.inPage.toFixed(0)} ms) — ${(base.total / down.total).toFixed(1)}x the downsampled dashboard`,
      );
      await compareBundles(browser, computeChartPayloadMessage(model));
    } finally {
      await browser.close();
    }

    // Tail: append while the store watches; time until every record is in its table.
    const model = new DashboardModel(store, [key], DEFAULT_VIEW);
    model.snapshot();
    const deltaCosts: number[] = [];
    const rebucketCosts: number[] = [];
    // The store's timers and watchers do not keep Node alive (unref); this does, with a deadline.
    let keepAlive: NodeJS.Timeout | undefined;
    const done = new Promise<void>((resolveDone, reject) => {
      const deadline = performance.now() + 120_000;
      keepAlive = setInterval(() => {
        if (performance.now() > deadline)
          reject(new Error(`tail not ingested: ${store.get(key)?.tables.get('train')?.length} rows`));
      }, 100);
      store.onDidChange((change: RunChange) => {
        model.accept(change);
        const d0 = performance.now();
        const m = model.next();
        const cost = performance.now() - d0;
        // A delta that re-sends whole series: the bucket width doubled as the run grew.
        if (m?.type === 'delta' && m.runs.some((r) => r.series.some((c) => c.from === 0))) rebucketCosts.push(cost);
        else deltaCosts.push(cost);
        if ((store.get(key)?.tables.get('train')?.length ?? 0) >= STEPS + TAIL) resolveDone();
      });
    });
    const tail = lines(STEPS, STEPS + TAIL);
    const tailRecords = TAIL + TAIL / 100;
    t = performance.now();
    const chunk = 10_000;
    const rows = tail.split('\n');
    for (let i = 0; i < rows.length - 1; i += chunk)
      appendFileSync(join(dir, 'metrics.jsonl'), rows.slice(i, i + chunk).join('\n') + '\n');
    await done.finally(() => clearInterval(keepAlive));
    const tailMs = performance.now() - t;
    t = performance.now();
    plainParse(tail);
    const plainTailMs = performance.now() - t;
    console.log(
      `tail ingest while watching (+${tailRecords.toLocaleString('en-US')} records, store flush 150 ms): ${rate(tailRecords, tailMs)}; plain JSON.parse loop: ${rate(tailRecords, plainTailMs)}`,
    );
    // Then a live trainer's pace: 500 records every 200 ms.
    for (let i = 0; i < 10; i++) {
      const s0 = STEPS + TAIL + i * 500;
      appendFileSync(join(dir, 'metrics.jsonl'), lines(s0, s0 + 500));
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 500));
    deltaCosts.sort((a, b) => a - b);
    const atRows = (STEPS + TAIL).toLocaleString('en-US');
    console.log(
      `dashboard delta at ${atRows}+ rows: median ${deltaCosts[deltaCosts.length >> 1]?.toFixed(1)} ms, max ${deltaCosts.at(-1)?.toFixed(1)} ms over ${deltaCosts.length} deltas; re-bucketing deltas (bucket width doubled): ${rebucketCosts.map((c) => c.toFixed(0)).join(', ') || 'none'} ms`,
    );
  } finally {
    store.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
