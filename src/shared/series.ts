// Pure numeric helpers for the dashboard: smoothing, downsampling, range queries and x-axis
// transforms over column arrays. No DOM, no vscode, no host types: the host computes chart
// payloads with these (full resolution lives only in the host), the bench and tests call them
// directly.

export const X_AXES = ['step', 'tokens', 'relative', 'wall'] as const;
export type XAxis = (typeof X_AXES)[number];

/**
 * A schedule the trainer sets rather than a measurement (the learning rate: ours `lr`, Hugging
 * Face's `learning_rate`, Lightning's `lr-AdamW`, `train/lr`…): drawn as logged, never smoothed,
 * as an average would make it lag the true schedule.
 */
export function isSchedule(field: string): boolean {
  return /(^|[/_-])(lr|learning_rate)($|[/_-])/i.test(field);
}

export const NON_FINITE = ['NaN', 'Infinity', '-Infinity'] as const;
export type NonFinite = (typeof NON_FINITE)[number];

export function nonFiniteName(v: number): NonFinite {
  if (Number.isNaN(v)) return 'NaN';
  return v > 0 ? 'Infinity' : '-Infinity';
}

// ---------------------------------------------------------------------------------------------
// Smoothing: TensorBoard's debiased exponential moving average.
//   last = last * w + (1 - w) * v;   smoothed = last / (1 - w^n)   (n = finite points so far)
// A non-finite point is skipped (it neither moves the average nor counts in n) and its smoothed
// value stays non-finite, so it is drawn as a marker rather than folded into the line. As in
// TensorBoard, a series that has been constant so far is returned exactly (no rounding drift).

export interface EmaState {
  last: number;
  count: number;
  /** w^count, kept as a running product (Math.pow per point was a third of the cost). */
  wn: number;
  /** First finite value, NaN until there is one. */
  first: number;
  /** Every finite value so far equals `first`. */
  constant: boolean;
}

export function emaStart(): EmaState {
  return { last: 0, count: 0, wn: 1, first: NaN, constant: true };
}

/** Clamped to [0, 0.999]: at w = 1 the average would never move. */
export function clampWeight(w: number): number {
  return Number.isFinite(w) ? Math.min(0.999, Math.max(0, w)) : 0;
}

/** Advances `s` by one value and returns the smoothed value for it. */
export function emaStep(s: EmaState, v: number, w: number): number {
  if (!Number.isFinite(v)) return v;
  s.last = s.last * w + (1 - w) * v;
  s.count++;
  s.wn *= w;
  if (s.count === 1) s.first = v;
  else if (v !== s.first) s.constant = false;
  if (s.constant) return v;
  return s.last / (1 - s.wn);
}

export function smooth(values: ArrayLike<number>, weight: number, length = values.length): Float64Array {
  const w = clampWeight(weight);
  const out = new Float64Array(length);
  const s = emaStart();
  for (let i = 0; i < length; i++) out[i] = w === 0 ? values[i] : emaStep(s, values[i], w);
  return out;
}

/**
 * The EMA state every `every` rows of one series, so a row range [lo, hi) of a long series is
 * smoothed in O(hi - lo + every) instead of from row 0, and a live series only re-smooths its tail.
 */
export class EmaCheckpoints {
  readonly weight: number;
  private readonly states: EmaState[] = [emaStart()]; // states[k]: before row k * every

  constructor(
    weight: number,
    readonly every = 4096,
  ) {
    this.weight = clampWeight(weight);
  }

  /** Rows at and after `row` were rewritten: forget the checkpoints that saw them. */
  invalidateFrom(row: number): void {
    const keep = Math.floor(row / this.every) + 1;
    if (this.states.length > keep) this.states.length = keep;
  }

  /** Smoothed values of rows [lo, hi) (index 0 = row lo). */
  smoothRange(values: ArrayLike<number>, lo: number, hi: number): Float64Array {
    const out = new Float64Array(Math.max(0, hi - lo));
    const w = this.weight;
    if (w === 0) {
      for (let i = lo; i < hi; i++) out[i - lo] = values[i];
      return out;
    }
    const k = Math.min(Math.floor(lo / this.every), this.states.length - 1);
    const s = { ...this.states[k] };
    // Checkpoint boundaries split the loop, so the inner loop is a plain pass over one block.
    for (let a = k * this.every; a < hi; a += this.every) {
      if (a > 0 && this.states.length === a / this.every) this.states.push({ ...s });
      emaBlock(values, a, Math.min(hi, a + this.every), s, w, out, lo);
    }
    return out;
  }
}

/** emaStep over rows [a, e), with the state in locals: the hot loop of a million-row series. */
function emaBlock(
  values: ArrayLike<number>,
  a: number,
  e: number,
  s: EmaState,
  w: number,
  out: Float64Array,
  lo: number,
): void {
  let { last, count, wn, first, constant } = s;
  for (let i = a; i < e; i++) {
    const v = values[i];
    let r = v;
    if (v - v === 0) {
      // finite
      last = last * w + (1 - w) * v;
      count++;
      wn *= w;
      if (count === 1) first = v;
      else if (v !== first) constant = false;
      if (!constant) r = last / (1 - wn);
    }
    if (i >= lo) out[i - lo] = r;
  }
  Object.assign(s, { last, count, wn, first, constant });
}

// ---------------------------------------------------------------------------------------------
// Downsampling: M4 (first, min, max, last of every bucket of `stride` consecutive rows). A line
// through those four points per pixel column is drawn the same as through all points, and the
// extremes are always kept. Buckets are counted from the first row of the view, so appending rows
// only changes the last bucket: a live view re-sends from that bucket on, never everything.

/** Points of consecutive buckets; `n[i]` = how many of the points came from bucket `from + i`. */
export interface Points {
  x: number[];
  y: number[];
  n: number[];
}

/** Non-finite rows: the first NaN, +Inf and -Inf row of each bucket (never silently dropped). */
export interface Markers {
  x: number[];
  step: number[];
  v: NonFinite[];
  n: number[];
}

export function emptyPoints(): Points {
  return { x: [], y: [], n: [] };
}

export function emptyMarkers(): Markers {
  return { x: [], step: [], v: [], n: [] };
}

/** 1 while the rows fit; else a power of two (so it changes rarely as a live series grows). */
export function strideFor(rows: number, maxPoints: number): number {
  if (rows <= maxPoints) return 1;
  const buckets = Math.max(1, Math.floor(maxPoints / 4));
  let stride = 2;
  while (Math.ceil(rows / stride) > buckets) stride *= 2;
  return stride;
}

/** An x column: x of row i is `values[i] - offset` (relative time without copying t). */
export interface XColumn {
  values: ArrayLike<number>;
  offset: number;
}

export interface DownsampleInput {
  x: XColumn;
  /** y of row i is y[i - yStart] (a smoothed slice starts at its range's first row). */
  y: ArrayLike<number>;
  yStart?: number;
  /** Rows [lo, hi) are the view; buckets are counted from lo. */
  lo: number;
  hi: number;
  stride: number;
  /** First bucket to emit (0: all). */
  fromBucket?: number;
  /**
   * Rows where NaN was logged (a marker); a NaN in any other row is a missing value, skipped like
   * a gap. Without it every NaN is taken as logged.
   */
  loggedNaN?: ReadonlySet<number>;
}

/** M4 over rows [lo, hi). Rows whose x is not finite are not plottable and are skipped. */
export function downsample(input: DownsampleInput, points: Points, markers?: Markers, step?: ArrayLike<number>): void {
  const { x, y, lo, hi, stride } = input;
  const yStart = input.yStart ?? 0;
  const buckets = Math.ceil((hi - lo) / stride);
  for (let b = input.fromBucket ?? 0; b < buckets; b++) {
    const a = lo + b * stride;
    const e = Math.min(hi, a + stride);
    let first = -1,
      last = -1,
      min = -1,
      max = -1;
    let nan = -1,
      pinf = -1,
      ninf = -1;
    for (let i = a; i < e; i++) {
      if (!Number.isFinite(x.values[i])) continue;
      const v = y[i - yStart];
      if (Number.isFinite(v)) {
        if (first < 0) first = max = min = i;
        else if (v < y[min - yStart]) min = i;
        else if (v > y[max - yStart]) max = i;
        last = i;
      } else if (Number.isNaN(v)) {
        if (nan < 0 && (input.loggedNaN === undefined || input.loggedNaN.has(i))) nan = i;
      } else if (v > 0) {
        if (pinf < 0) pinf = i;
      } else if (ninf < 0) ninf = i;
    }
    emitBucket(points, x, y, yStart, first < 0 ? [] : [first, min, max, last]);
    if (markers) emitMarkers(markers, x, y, yStart, step, [nan, pinf, ninf]);
  }
}

function emitBucket(points: Points, x: XColumn, y: ArrayLike<number>, yStart: number, rows: number[]): void {
  const unique = [...new Set(rows)].sort((p, q) => p - q);
  for (const i of unique) {
    points.x.push(x.values[i] - x.offset);
    points.y.push(y[i - yStart]);
  }
  points.n.push(unique.length);
}

function emitMarkers(
  m: Markers,
  x: XColumn,
  y: ArrayLike<number>,
  yStart: number,
  step: ArrayLike<number> | undefined,
  rows: number[],
): void {
  const found = rows.filter((i) => i >= 0).sort((p, q) => p - q);
  for (const i of found) {
    m.x.push(x.values[i] - x.offset);
    m.step.push(step ? step[i] : i);
    m.v.push(nonFiniteName(y[i - yStart]));
  }
  m.n.push(found.length);
}

// ---------------------------------------------------------------------------------------------
// Range queries and x transforms.

/** First index in [0, length) with a[i] >= value (a sorted ascending); `length` if none. */
export function lowerBound(a: ArrayLike<number>, length: number, value: number): number {
  let lo = 0,
    hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index with a[i] > value. */
export function upperBound(a: ArrayLike<number>, length: number, value: number): number {
  let lo = 0,
    hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (a[mid] <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function isSorted(a: ArrayLike<number>, length: number): boolean {
  for (let i = 1; i < length; i++) if (a[i] < a[i - 1]) return false;
  return true;
}

/**
 * Rows [lo, hi) whose x lies in [x0, x1], widened by one row on each side so the line runs on
 * to the chart's edges. x is expected ascending (step, tokens, time); a column that is not
 * (a clock stepped back) is scanned linearly instead.
 */
export function rowRange(x: XColumn, length: number, x0: number, x1: number): [number, number] {
  let lo: number, hi: number;
  const a = x.values;
  if (isSorted(a, length)) {
    lo = lowerBound(a, length, x0 + x.offset);
    hi = upperBound(a, length, x1 + x.offset);
  } else {
    lo = 0;
    while (lo < length && !(a[lo] - x.offset >= x0)) lo++;
    hi = length;
    while (hi > lo && !(a[hi - 1] - x.offset <= x1)) hi--;
  }
  if (hi <= lo) return [lo, lo];
  return [Math.max(0, lo - 1), Math.min(length, hi + 1)];
}

/**
 * Values of a column looked up by step: for each of `steps`, the value of the last source row
 * whose step is at or before it (NaN if none). Gives eval records and events a token count
 * from the train records.
 */
export function lookupByStep(
  srcStep: ArrayLike<number>,
  srcValue: ArrayLike<number>,
  srcLength: number,
  steps: ArrayLike<number>,
  length = steps.length,
): Float64Array {
  const out = new Float64Array(length);
  for (let i = 0; i < length; i++) {
    const j = upperBound(srcStep, srcLength, steps[i]) - 1;
    out[i] = j >= 0 ? srcValue[j] : NaN;
  }
  return out;
}

/**
 * For each time in `times`, the value of the source row nearest to it in time (`srcT` ascending):
 * how a record that has a time but no step of its own (system.jsonl) finds its place on a step
 * axis. NaN where the source has no rows or the time is not a number.
 */
export function nearestByTime(
  srcT: ArrayLike<number>,
  srcValue: ArrayLike<number>,
  srcLength: number,
  times: ArrayLike<number>,
  length = times.length,
): Float64Array {
  const out = new Float64Array(length).fill(NaN);
  if (srcLength === 0) return out;
  for (let i = 0; i < length; i++) {
    const t = times[i];
    if (Number.isNaN(t)) continue;
    const after = upperBound(srcT, srcLength, t);
    const before = after - 1;
    if (after >= srcLength) out[i] = srcValue[before];
    else if (before < 0) out[i] = srcValue[after];
    else out[i] = t - srcT[before] <= srcT[after] - t ? srcValue[before] : srcValue[after];
  }
  return out;
}
