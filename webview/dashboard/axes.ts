// Axes that read well: where the ticks go and what they say. Pure functions (no DOM, no chart.js),
// tested in test/unit/axes.test.ts. Chart.js' own tick generator knows neither steps (whole
// numbers), nor clock times and durations (its time scale needs a date adapter, which we do not
// ship), nor how to thin a narrow log range: tokens/s on a log axis got 5,100 / 5,300 / 5,500 on top
// of each other. So ticks are chosen here and charts.ts hands them to chart.js.
import type { XAxis } from '../../src/shared/series';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The x axis' title: what it measures, and in which unit or zone. */
export function xTitle(axis: XAxis, timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone): string {
  switch (axis) {
    case 'step':
      return 'Step';
    case 'tokens':
      return 'Tokens seen';
    case 'relative':
      return 'Time since start';
    case 'wall':
      return `Wall time (${timeZone})`;
  }
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
export function niceStep(raw: number): number {
  if (!(raw > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/** k * step without float dust (0.1 * 3 = 0.30000000000000004). */
const multiple = (k: number, step: number) => Number((k * step).toPrecision(12));

/** About `count` evenly spaced round ticks in [min, max], never closer than `minStep`. */
export function linearTicks(min: number, max: number, count: number, minStep = 0): number[] {
  if (!(max > min)) return Number.isFinite(min) ? [min] : [];
  const step = Math.max(minStep, niceStep((max - min) / Math.max(1, count)));
  const out: number[] = [];
  for (let k = Math.ceil(min / step - 1e-9); multiple(k, step) <= max + step * 1e-9; k++) out.push(multiple(k, step));
  return out;
}

/** Tick values, and the distance between neighbours (labels choose their unit by it). */
export interface Ticks {
  step: number;
  ticks: number[];
}

/** Steps of clock time a tick may take, shortest first. */
const TIME_STEPS = [
  SECOND,
  2 * SECOND,
  5 * SECOND,
  10 * SECOND,
  15 * SECOND,
  30 * SECOND,
  MINUTE,
  2 * MINUTE,
  5 * MINUTE,
  10 * MINUTE,
  15 * MINUTE,
  30 * MINUTE,
  HOUR,
  2 * HOUR,
  3 * HOUR,
  6 * HOUR,
  12 * HOUR,
  DAY,
  2 * DAY,
  7 * DAY,
  14 * DAY,
];

/** The step between time ticks for about `count` of them over `span` ms. */
export function timeStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  return TIME_STEPS.find((s) => s >= raw) ?? niceStep(raw / DAY) * DAY;
}

/**
 * Ticks on whole seconds, minutes, hours or days. `zoneOffset(t)` is the clock's offset from UTC
 * at t in ms (0 for durations), so wall-time ticks fall on local round times.
 */
export function timeTicks(min: number, max: number, count: number, zoneOffset: (t: number) => number = () => 0): Ticks {
  if (!(max > min)) return { step: SECOND, ticks: Number.isFinite(min) ? [min] : [] };
  const step = timeStep(max - min, count);
  const offset = zoneOffset(min); // one offset for the range: a DST change shifts later ticks by an hour
  const out: number[] = [];
  for (let t = Math.ceil((min + offset) / step) * step - offset; t <= max; t += step) out.push(t);
  return { step, ticks: out };
}

/** The local clock's offset from UTC at t, in ms. */
export const localOffset = (t: number): number => -new Date(t).getTimezoneOffset() * MINUTE;

/**
 * Ticks of a log axis at least 1/count of its decades apart, so labels never overlap: 1-2-5 or
 * powers of ten (every k-th decade when there are many) across decades, round linear ticks within
 * a narrow range.
 */
export function logTicks(min: number, max: number, count: number): number[] {
  if (!(min > 0) || !(max > min)) return [];
  const span = Math.log10(max / min);
  const gap = span / Math.max(1, count);
  let candidates: number[];
  if (span >= 1) {
    const dense = gap <= Math.log10(2.5);
    const every = Math.max(1, Math.ceil(gap - 1e-9));
    candidates = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      if (dense) candidates.push(...[1, 2, 5].map((m) => multiple(m, 10 ** e)));
      else if (e % every === 0) candidates.push(multiple(1, 10 ** e));
    }
  } else {
    candidates = linearTicks(min, max, count);
  }
  const out: number[] = [];
  for (const t of candidates) {
    if (t < min * (1 - 1e-9) || t > max * (1 + 1e-9)) continue;
    const last = out.at(-1);
    if (last === undefined || Math.log10(t / last) >= gap * 0.999) out.push(t);
  }
  return out;
}

/** 1.5k, 20M, 1.2B; small numbers with up to 3 significant digits; tiny ones as 1e-5. */
export function compactNumber(x: number): string {
  const a = Math.abs(x);
  if (a >= 1e9) return `${+(x / 1e9).toPrecision(3)}B`;
  if (a >= 1e6) return `${+(x / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(x / 1e3).toPrecision(3)}k`;
  if (a !== 0 && a < 1e-3) return x.toExponential(1).replace(/\.0e/, 'e').replace('e-0', 'e-');
  return String(+x.toPrecision(3));
}

/** A duration in its two largest units: 45s, 12m 30s, 1h 5m, 2d 4h; `full` down to seconds. */
export function formatDuration(ms: number, full = false): string {
  const sign = ms < 0 ? '-' : '';
  let s = Math.round(Math.abs(ms) / SECOND);
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(s / size);
    s -= n * size;
    if (n > 0) parts.push(`${n}${unit}`);
  }
  if (parts.length === 0) return '0s';
  return sign + (full ? parts : parts.slice(0, 2)).join(' ');
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A clock time of the local zone: 14:05, with seconds when the ticks are seconds apart. */
export function formatClock(t: number, seconds: boolean): string {
  const d = new Date(t);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}${seconds ? `:${pad(d.getSeconds())}` : ''}`;
}

const formatDate = (t: number) => new Date(t).toLocaleDateString('en-US', { month: 'short', day: 'numeric' });

/** A tick's label; `step` is the distance between ticks (time axes choose their unit by it). */
export function xTickLabel(axis: XAxis, x: number, step: number): string {
  switch (axis) {
    case 'step':
      return Math.abs(x) < 1e4 ? Math.round(x).toLocaleString('en-US') : compactNumber(Math.round(x));
    case 'tokens':
      return compactNumber(x);
    case 'relative':
      return formatDuration(x);
    case 'wall': // a tick at midnight names the day
      return step >= DAY || formatClock(x, false) === '00:00' ? formatDate(x) : formatClock(x, step < MINUTE);
  }
}

/** An x value in full, for tooltips. */
export function xLabel(axis: XAxis, x: number): string {
  switch (axis) {
    case 'step':
      return `step ${Math.round(x).toLocaleString('en-US')}`;
    case 'tokens':
      return `${Math.round(x).toLocaleString('en-US')} tokens`;
    case 'relative':
      return `${formatDuration(x, true)} since start`;
    case 'wall':
      return `${formatDate(x)} ${formatClock(x, true)}`;
  }
}

/** Where the x ticks go on this axis, and the step between them (for their labels). */
export function xTicks(axis: XAxis, log: boolean, min: number, max: number, count: number): Ticks {
  if (log) return { step: 0, ticks: logTicks(min, max, count) };
  switch (axis) {
    case 'step':
    case 'tokens': {
      const ticks = linearTicks(min, max, count, 1);
      return { step: ticks.length > 1 ? ticks[1] - ticks[0] : 1, ticks };
    }
    case 'relative':
      return timeTicks(min, max, count);
    case 'wall':
      return timeTicks(min, max, count, localOffset);
  }
}
