// bench:dashboard's A/B of the webview bundle: the one built before the UI toolkit (baseline-bundle.ts)
// against today's, loaded alternately in the same browser (ABBA order, so a slow stretch of a loaded
// machine falls on both sides alike). For each: bundle size (raw and gzip), and per load, in the
// page's own clock: navigation start -> "ready" posted, and "ready" -> first chart paint of the same
// snapshot; with the bundle fetched from a URL and inline (BENCH_AB_LOAD=url,inline: both by
// default). Figures for a report, never pass/fail.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser } from 'playwright-core';
import type { HostToWebview } from '../src/shared/protocol';
import { openDashboard, TEST_BUNDLE } from '../test/integration/dashboard-page';
import { baselineRevision, buildBaselineBundle } from './baseline-bundle';

const ROOT = resolve(__dirname, '..');
const ROUNDS = Number(process.env.BENCH_AB_ROUNDS ?? 9);

interface Load {
  ready: number;
  paint: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const kib = (n: number) => `${(n / 1024).toFixed(0)} KiB`;

function size(dir: string): { raw: number; gzip: number } {
  const js = readFileSync(join(dir, 'dashboard.js'));
  return { raw: js.length, gzip: gzipSync(js, { level: 9 }).length };
}

/** What fitTo reads of a valibot schema (objects, arrays, nullables, variants, literals). */
interface SchemaShape {
  entries?: Record<string, SchemaShape>;
  item?: SchemaShape;
  wrapped?: SchemaShape;
  key?: string;
  options?: SchemaShape[];
  literal?: unknown;
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;

/**
 * `value` with the fields `schema` does not know dropped, recursively: a message of today's
 * protocol as the baseline's (older, exact-object) schema takes it. The baseline paints the rest.
 */
function fitTo(schema: SchemaShape, value: unknown): unknown {
  if (value === null || value === undefined) return value;
  if (schema.wrapped) return fitTo(schema.wrapped, value);
  if (schema.options && schema.key && isRecord(value)) {
    const tag = value[schema.key];
    const option = schema.options.find((o) => o.entries?.[schema.key ?? '']?.literal === tag);
    return option ? fitTo(option, value) : value;
  }
  if (schema.item && Array.isArray(value)) return value.map((x: unknown) => fitTo(schema.item ?? {}, x));
  const entries = schema.entries;
  if (entries && isRecord(value))
    return Object.fromEntries(
      Object.entries(value)
        .filter(([k]) => k in entries)
        .map(([k, x]) => [k, fitTo(entries[k], x)]),
    );
  return value;
}

/** The baseline's own HostToWebviewSchema, from its sources (valibot, as today). */
async function baselineHostSchema(srcDir: string): Promise<SchemaShape> {
  const protocol: unknown = await import(join(srcDir, 'src/shared/protocol.ts'));
  if (!isRecord(protocol) || !isRecord(protocol.HostToWebviewSchema))
    throw new Error(`${srcDir}: the baseline's src/shared/protocol.ts has no HostToWebviewSchema`);
  return protocol.HostToWebviewSchema;
}

async function load(browser: Browser, bundleDir: string, message: unknown, inline: boolean): Promise<Load> {
  // The baseline's test hooks (the paint time) switch on this flag; today's bundle ignores it.
  const { page, refused } = await openDashboard(browser, {
    inline,
    bundleDir,
    initScript: 'window.__steelscopeTest = true;',
  });
  try {
    await page.waitForFunction(() => (window as unknown as { __postedAt: number[] }).__postedAt.length > 0);
    const result = await page.evaluate(
      async (m) => {
        const w = window as unknown as { __postedAt: number[]; __steelscopePainted?: number };
        const t0 = performance.now();
        window.postMessage(m, '*');
        while (w.__steelscopePainted === undefined && performance.now() - t0 < 60_000)
          await new Promise((r) => setTimeout(r, 2));
        return { ready: w.__postedAt[0], paint: (w.__steelscopePainted ?? NaN) - t0 };
      },
      JSON.parse(JSON.stringify(message)) as unknown,
    );
    if (refused.length || Number.isNaN(result.paint)) throw new Error(`page (${bundleDir}): ${refused.join(' | ')}`);
    return result;
  } finally {
    await page.close();
  }
}

type LoadMode = 'inline' | 'url';

/**
 * url (first, the figure that matches VS Code): fetched from the page's origin, as a VS Code webview
 * fetches its script from the resource origin its service worker serves (asWebviewUri), which lets
 * Chromium compile the script while it streams in; here never from a code cache (a webview's
 * later loads may get one: its service worker keeps resources in CacheStorage). inline: bundle and stylesheet as data: URLs in the page (as the rest of
 * bench:dashboard loads it), which VS Code never does.
 */
const LOAD_MODES: LoadMode[] = (process.env.BENCH_AB_LOAD ?? 'url,inline')
  .split(',')
  .filter((m): m is LoadMode => m === 'inline' || m === 'url');

interface Side {
  name: string;
  dir: string;
  message: unknown;
}

const ms = (x: number) => `${x.toFixed(0)} ms`;
function spread(xs: number[]): string {
  const sorted = [...xs].sort((p, q) => p - q);
  const quartile = (q: number) => sorted[Math.round(q * (sorted.length - 1))];
  return `median ${ms(quartile(0.5))} (quartiles ${quartile(0.25).toFixed(0)}-${quartile(0.75).toFixed(0)})`;
}

const FIGURES: Record<string, (l: Load) => number> = {
  'start -> ready': (l) => l.ready,
  'ready -> first chart paint': (l) => l.paint,
  'start -> first chart paint': (l) => l.ready + l.paint,
};

/** ROUNDS loads of each side in ABBA order, and their figures. */
async function abRounds(browser: Browser, mode: LoadMode, sides: readonly Side[]): Promise<void> {
  const loads: Load[][] = sides.map(() => []);
  const once = (s: number) => load(browser, sides[s].dir, sides[s].message, mode === 'inline');
  for (const s of sides.keys()) await once(s); // warm-up: the browser's first pages pay for its own start
  for (let i = 0; i < ROUNDS; i++) for (const s of i % 2 ? [1, 0] : [0, 1]) loads[s].push(await once(s));
  console.log(`dashboard bundle A/B, ${mode} loading, ${ROUNDS} loads each, alternating (ABBA):`);
  for (const [s, side] of sides.entries()) {
    console.log(`  ${side.name}:`);
    for (const [name, of] of Object.entries(FIGURES)) console.log(`    ${name}: ${spread(loads[s].map(of))}`);
  }
  // Paired by round (the two loads of a round ran back to back): noise is what the differences
  // spread over; a change is within noise when 0 lies between their quartiles.
  console.log('  now / before:');
  for (const [name, of] of Object.entries(FIGURES)) {
    const [before, now] = loads.map((side) => side.map(of));
    const ratio = (median(now) / median(before)).toFixed(2);
    console.log(`    ${name}: ${ratio}x; now - before, per round: ${spread(now.map((x, i) => x - before[i]))}`);
  }
}

/** Runs the A/B and prints its lines; `message` is the snapshot both bundles paint. */
export async function compareBundles(browser: Browser, message: HostToWebview): Promise<void> {
  const { rev, what } = baselineRevision();
  const baseline = await buildBaselineBundle(rev);
  try {
    const sides: Side[] = [
      {
        name: `before the toolkit (${rev}, ${what})`,
        dir: baseline.dir,
        message: fitTo(await baselineHostSchema(baseline.srcDir), message),
      },
      // The bundle with test hooks, for the paint time; the shipped one differs by the hooks alone.
      { name: `now (${TEST_BUNDLE}; size of the shipped dist/webview)`, dir: join(ROOT, TEST_BUNDLE), message },
    ];
    const sizes = [size(baseline.dir), size(join(ROOT, 'dist/webview'))];
    const ratio = (x: number, y: number) => (y / x).toFixed(2);
    for (const [i, side] of sides.entries())
      console.log(`dashboard.js ${side.name}: ${kib(sizes[i].raw)} (${kib(sizes[i].gzip)} gzip)`);
    console.log(`  now / before: ${ratio(sizes[0].raw, sizes[1].raw)} (gzip ${ratio(sizes[0].gzip, sizes[1].gzip)})`);
    for (const mode of LOAD_MODES) await abRounds(browser, mode, sides);
  } finally {
    baseline.remove();
  }
}
