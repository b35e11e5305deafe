// The dashboard's axes (webview/dashboard/axes.ts): whole steps, k/M/B tokens, clock times and
// durations, log ticks that never crowd each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compactNumber,
  formatDuration,
  linearTicks,
  logTicks,
  timeTicks,
  xLabel,
  xTickLabel,
  xTicks,
  xTitle,
} from '../../webview/dashboard/axes';

const MIN = 60_000;
const HOUR = 60 * MIN;

test('a step axis has whole-step ticks, even over a range of three steps', () => {
  assert.deepEqual(xTicks('step', false, 0, 3, 8).ticks, [0, 1, 2, 3]);
  assert.deepEqual(xTicks('step', false, 0.3, 2.7, 10).ticks, [1, 2]);
  for (const t of xTicks('step', false, 17, 1234, 7).ticks) assert.ok(Number.isInteger(t), String(t));
  assert.deepEqual(xTicks('step', false, 0, 1000, 5).ticks, [0, 200, 400, 600, 800, 1000]);
  assert.equal(xTickLabel('step', 12_000, 2000), '12k');
  assert.equal(xTickLabel('step', 1100, 100), '1,100');
});

test('tokens read with k, M and B', () => {
  assert.deepEqual([1500, 20e6, 1.2e9, 999, 0].map(compactNumber), ['1.5k', '20M', '1.2B', '999', '0']);
  assert.equal(xTickLabel('tokens', 2_500_000_000, 5e8), '2.5B');
  assert.equal(xLabel('tokens', 1234567), '1,234,567 tokens');
});

test('relative time ticks fall on round durations and read as durations', () => {
  const { step, ticks } = timeTicks(0, 2 * HOUR + 10 * MIN, 5);
  assert.equal(step, 30 * MIN);
  assert.deepEqual(
    ticks.map((t) => xTickLabel('relative', t, step)),
    ['0s', '30m', '1h', '1h 30m', '2h'],
  );
  assert.equal(timeTicks(0, 50_000, 5).step, 10_000);
  assert.equal(formatDuration(90_061_000), '1d 1h');
  assert.equal(formatDuration(90_061_000, true), '1d 1h 1m 1s');
  assert.equal(xLabel('relative', 3_725_000), '1h 2m 5s since start');
});

test('wall-time ticks fall on round local clock times', () => {
  const start = new Date(2026, 0, 5, 13, 47, 12).getTime();
  const { step, ticks } = xTicks('wall', false, start, start + 3 * HOUR, 6);
  assert.equal(step, 30 * MIN);
  const labels = ticks.map((t) => xTickLabel('wall', t, step));
  assert.deepEqual(labels, ['14:00', '14:30', '15:00', '15:30', '16:00', '16:30']);
  const overnight = xTicks('wall', false, new Date(2026, 0, 5, 20).getTime(), new Date(2026, 0, 6, 4).getTime(), 4);
  const night = overnight.ticks.map((t) => xTickLabel('wall', t, overnight.step));
  assert.ok(night.includes('Jan 6'), `midnight names the day: ${night}`);
  assert.equal(xTickLabel('wall', new Date(2026, 0, 5, 14, 0, 30).getTime(), 30_000), '14:00:30');
});

test('every x axis says what it is', () => {
  const titles = (['step', 'tokens', 'relative'] as const).map((a) => xTitle(a));
  assert.deepEqual(titles, ['Step', 'Tokens seen', 'Time since start']);
  assert.equal(xTitle('wall', 'Europe/Berlin'), 'Wall time (Europe/Berlin)');
});

/** Log-space distance between neighbouring ticks, in decades. */
const gaps = (ticks: number[]) => ticks.slice(1).map((t, i) => Math.log10(t / ticks[i]));

test('log ticks never crowd: a narrow range gets a few round values, a wide one decades', () => {
  // tokens/s between 5,050 and 5,550 on a log axis 230 px high: 5,100 / 5,300 / 5,500 once each.
  const narrow = logTicks(5050, 5550, 6);
  assert.deepEqual(narrow, [5100, 5200, 5300, 5400, 5500]);
  for (const g of gaps(narrow)) assert.ok(g >= (Math.log10(5550 / 5050) / 6) * 0.999);
  assert.deepEqual(logTicks(0.8, 1200, 4), [1, 10, 100, 1000]);
  assert.deepEqual(logTicks(1e-6, 1e6, 4), [1e-6, 1e-3, 1, 1e3, 1e6]);
  assert.deepEqual(logTicks(1, 100, 8), [1, 2, 5, 10, 20, 50, 100]);
  // A range of less than a decade but wide in log space: 100 .. 800 keeps an even spread.
  const mid = logTicks(100, 800, 4);
  for (const g of gaps(mid)) assert.ok(g >= (Math.log10(8) / 4) * 0.999, JSON.stringify(mid));
  assert.deepEqual(logTicks(0, 10, 4), [], 'no log ticks for a range that reaches 0');
});

test('linear ticks are round and exact', () => {
  assert.deepEqual(linearTicks(0, 1, 10), [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
  assert.deepEqual(linearTicks(5, 5, 4), [5]);
});
