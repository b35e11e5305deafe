// The dashboard's host-side model, without vscode: turns the store's full-resolution RunData into
// chart payloads (smoothed on full resolution, then downsampled to ~2,000 points per series for
// the visible x-range) and keeps, per panel, what the webview holds so a live run only re-sends
// the tail of each series. The panel controller (dashboard.ts) wires it to a WebviewPanel; the
// bench and the tests use it directly.
import { decodeMetric, describeEngine, type EventRecord, type SampleRecord } from '../../shared/run';
import type { EvalRecord } from '../../shared/eval';
import type {
  EvalItem,
  EventMark,
  HostMessage,
  RunDelta,
  RunHeader,
  RunSnapshot,
  SampleItem,
  SeriesChunk,
  ViewState,
} from '../../shared/protocol';
import {
  EmaCheckpoints,
  downsample,
  emptyMarkers,
  emptyPoints,
  isSchedule,
  isSorted,
  lookupByStep,
  nearestByTime,
  rowRange,
  strideFor,
  upperBound,
  type XAxis,
  type XColumn,
} from '../../shared/series';
import { SYSTEM_KIND } from '../../shared/system';
import type { RunChange, RunData, RunKey, RunStoreApi, SeriesTable } from '../runs/types';

export const MAX_POINTS = 2000;

/** What the webview holds of one series, so the next delta can start at the right bucket. */
interface SentSeries {
  stride: number;
  lo: number;
  hi: number;
  ema: EmaCheckpoints;
}

/** Per run: series sent, and the x-axis context they were computed in. */
class RunState {
  readonly series = new Map<string, SentSeries>();
  readonly tableLengths = new Map<string, number>();
  readonly tokenCache = new Map<string, { length: number; values: Float64Array }>();
  t0 = NaN;
  /** The system table's steps by time (stepsOf), for the table and train lengths they were found at. */
  systemSteps: { length: number; trainLength: number; values: Float64Array } | undefined;
  /**
   * Index of the first evals item sent before the train records of its step had arrived (evals.jsonl
   * and metrics.jsonl are tailed apart): its x on the tokens and time axes may still move.
   */
  evalsUnsettled = Infinity;
}

const seriesId = (kind: string, field: string) => `${kind}\u0000${field}`;

/** Start of the run for the relative-time axis: the earliest record time. */
function runStart(data: RunData): number {
  let t0 = Infinity;
  for (const table of data.tables.values()) if (table.length > 0 && table.t[0] < t0) t0 = table.t[0];
  return Number.isFinite(t0) ? t0 : 0;
}

/** The train table's token counts, if the run logs them (ours does; a foreign writer may not). */
function tokenSource(data: RunData): SeriesTable | undefined {
  const train = data.tables.get('train');
  return train?.fields.has('tokens') ? train : [...data.tables.values()].find((t) => t.fields.has('tokens'));
}

/**
 * The steps of a table's rows. A system.jsonl row takes the step of the train record nearest to it
 * in time (its own step only where the run has no timed train records), so the System charts share
 * the step axis with the loss even while one step spans several samples.
 */
function stepsOf(data: RunData, table: SeriesTable, state: RunState): Float64Array {
  if (table.kind !== SYSTEM_KIND) return table.step;
  const train = data.tables.get('train');
  if (!train || train.length === 0 || !isSorted(train.t, train.length)) return table.step;
  const cached = state.systemSteps;
  if (cached && cached.length === table.length && cached.trainLength === train.length) return cached.values;
  const values = nearestByTime(train.t, train.step, train.length, table.t, table.length);
  state.systemSteps = { length: table.length, trainLength: train.length, values };
  return values;
}

function xColumn(data: RunData, table: SeriesTable, axis: XAxis, state: RunState): XColumn {
  switch (axis) {
    case 'step':
      return { values: stepsOf(data, table, state), offset: 0 };
    case 'wall':
      return { values: table.t, offset: 0 };
    case 'relative':
      return { values: table.t, offset: state.t0 };
    case 'tokens': {
      const own = table.fields.get('tokens');
      if (own) return { values: own, offset: 0 };
      // Eval (or any kind without tokens) takes the count of the last train step at or before its step.
      const cached = state.tokenCache.get(table.kind);
      if (cached && cached.length === table.length) return { values: cached.values, offset: 0 };
      const src = tokenSource(data);
      const values = src
        ? lookupByStep(
            src.step,
            src.fields.get('tokens') as Float64Array,
            src.length,
            stepsOf(data, table, state),
            table.length,
          )
        : new Float64Array(table.length).fill(NaN);
      state.tokenCache.set(table.kind, { length: table.length, values });
      return { values, offset: 0 };
    }
  }
}

/** An event at its time on the time axes (it happened then), else where its step is (stepX). */
function eventX(data: RunData, e: EventRecord, axis: XAxis, t0: number): number {
  if (axis === 'wall') return e.t;
  if (axis === 'relative') return e.t - t0;
  return stepX(data, e.step, axis, t0);
}

function eventMarks(data: RunData, events: readonly EventRecord[], axis: XAxis, t0: number): EventMark[] {
  return events.map((e) => {
    const x = eventX(data, e, axis, t0);
    return {
      x: Number.isFinite(x) ? x : null,
      step: e.step,
      kind: String(e.kind),
      level: String(e.level ?? 'info'),
      message: String(e.message),
    };
  });
}

function sampleItem(s: SampleRecord): SampleItem {
  const parts: string[] = [];
  const add = (label: string, v: unknown) => {
    if (typeof v === 'number' && Number.isFinite(v)) parts.push(`${label} ${v}`);
  };
  add('T', s.temperature);
  add('top-k', s.top_k);
  add('top-p', s.top_p);
  add('seed', s.seed);
  return {
    step: s.step,
    t: typeof s.t === 'number' && Number.isFinite(s.t) ? s.t : null,
    prompt: s.prompt,
    text: s.text,
    settings: parts.join(' · '),
  };
}

/**
 * Where a record that carries only a step goes on the axis: evals.jsonl's own time is when the eval
 * ran, maybe long after that step was trained (Evaluate Checkpoint…), so the token count and the
 * time are those of the last train record at or before its step, as eval-loss records get their
 * token counts and system records their steps, so the Evals chart lines up with the loss. Step 0,
 * before any train record, is token 0 at the run's start. NaN where the run logs no such record.
 */
function stepX(data: RunData, step: number, axis: XAxis, t0: number): number {
  if (axis === 'step') return step;
  const src = axis === 'tokens' ? tokenSource(data) : data.tables.get('train');
  const j = src ? upperBound(src.step, src.length, step) - 1 : -1;
  if (src && j >= 0) {
    if (axis === 'tokens') return (src.fields.get('tokens') as Float64Array)[j];
    return src.t[j] - (axis === 'relative' ? t0 : 0);
  }
  if (step !== 0 || !src) return NaN;
  return axis === 'wall' ? t0 : 0;
}

function evalItem(data: RunData, r: EvalRecord, axis: XAxis, t0: number): EvalItem {
  const x = stepX(data, r.step, axis, t0);
  return {
    step: r.step,
    x: Number.isFinite(x) ? x : null,
    task: r.task,
    subject: r.subject,
    n: r.n,
    acc: r.acc ?? null,
    accNorm: r.acc_norm ?? null,
    stderr: r.stderr ?? null,
    ppl: r.ppl ?? null,
  };
}

/** Items of evals.jsonl's records from `from` on, on the view's axis; notes the first whose x may still move. */
function evalItems(data: RunData, state: RunState, from: number, axis: XAxis): EvalItem[] {
  const train = axis === 'tokens' ? tokenSource(data) : data.tables.get('train');
  const lastStep = train && train.length > 0 ? train.step[train.length - 1] : -Infinity;
  const settled = (r: EvalRecord) => axis === 'step' || r.step <= lastStep;
  const unsettled = data.evals.findIndex((r, i) => i >= from && !settled(r));
  // Items before `from` are not sent again: one of them that was unsettled still is.
  if (state.evalsUnsettled >= from) state.evalsUnsettled = unsettled < 0 ? Infinity : unsettled;
  return data.evals.slice(from).map((r) => evalItem(data, r, axis, state.t0));
}

/** Whether any record of the run has a time (a run without metrics yet counts as timed: nothing to say). */
function hasTime(data: RunData): boolean {
  const tables = [...data.tables.values()].filter((t) => t.length > 0);
  return tables.length === 0 || tables.some((t) => Number.isFinite(t.t[t.length - 1]) || Number.isFinite(t.t[0]));
}

export function runHeader(data: RunData, color: number): RunHeader {
  const s = data.summary;
  const clip = decodeMetric(s.config?.grad_clip ?? s.info?.config?.grad_clip);
  return {
    key: s.key,
    name: s.name,
    status: s.status,
    color,
    gradClip: clip !== undefined && Number.isFinite(clip) ? clip : null,
    lastStep: s.lastStep !== undefined && Number.isFinite(s.lastStep) ? s.lastStep : null,
    malformed: { ...s.malformed },
    timed: hasTime(data),
    engine: s.info ? (describeEngine(s.info) ?? null) : null,
    checkpoints: s.checkpoints.map((c) => ({
      step: c.step,
      evalLoss: c.evalLoss !== null && Number.isFinite(c.evalLoss) ? c.evalLoss : null,
      best: c.best,
      complete: c.complete,
    })),
  };
}

const NO_ROWS: ReadonlySet<number> = new Set();

/**
 * One series as a chunk: buckets from `fromRow`'s bucket on when the webview already holds the
 * same bucketing of the same rows, else all of it.
 */
function seriesChunk(
  data: RunData,
  state: RunState,
  table: SeriesTable,
  field: string,
  view: ViewState,
  maxPoints: number,
  fromRow: number,
): SeriesChunk {
  const id = seriesId(table.kind, field);
  const column = table.fields.get(field) as Float64Array;
  const x = xColumn(data, table, view.xAxis, state);
  const [lo, hi] = view.range ? rowRange(x, table.length, view.range[0], view.range[1]) : [0, table.length];
  const stride = strideFor(hi - lo, maxPoints);
  let sent = state.series.get(id);
  if (!sent || sent.ema.weight !== view.smoothing) {
    sent = { stride, lo, hi: 0, ema: new EmaCheckpoints(view.smoothing) };
    state.series.set(id, sent);
  }
  sent.ema.invalidateFrom(fromRow);
  const incremental = !view.range && sent.stride === stride && sent.lo === lo;
  const fromBucket = incremental ? Math.max(0, Math.floor((Math.min(fromRow, sent.hi) - lo) / stride)) : 0;
  const raw = emptyPoints();
  const markers = emptyMarkers();
  const loggedNaN = table.loggedNaN.get(field) ?? NO_ROWS;
  downsample({ x, y: column, lo, hi, stride, fromBucket, loggedNaN }, raw, markers, table.step);
  let smooth = null;
  if (view.smoothing > 0 && !isSchedule(field)) {
    const yStart = lo + fromBucket * stride;
    smooth = emptyPoints();
    downsample({ x, y: sent.ema.smoothRange(column, yStart, hi), yStart, lo, hi, stride, fromBucket }, smooth);
  }
  Object.assign(sent, { stride, lo, hi });
  return { kind: table.kind, field, total: hi - lo, stride, from: fromBucket, raw, smooth, markers };
}

function allSeries(data: RunData, state: RunState, view: ViewState, maxPoints: number): SeriesChunk[] {
  const out: SeriesChunk[] = [];
  for (const table of data.tables.values()) {
    state.tableLengths.set(table.kind, table.length);
    for (const field of table.fields.keys()) out.push(seriesChunk(data, state, table, field, view, maxPoints, 0));
  }
  return out;
}

function runSnapshot(data: RunData, state: RunState, view: ViewState, color: number, maxPoints: number): RunSnapshot {
  state.series.clear();
  state.tokenCache.clear();
  state.systemSteps = undefined;
  state.t0 = runStart(data);
  return {
    header: runHeader(data, color),
    series: allSeries(data, state, view, maxPoints),
    events: eventMarks(data, data.events, view.xAxis, state.t0),
    samples: data.samples.map(sampleItem),
    evals: evalItems(data, state, 0, view.xAxis),
  };
}

/** The chart payload of one run at full extent or for `view.range`: pure, for the bench and tests. */
export function computeChartPayload(
  data: RunData,
  view: ViewState,
  opts: { color?: number; maxPoints?: number } = {},
): RunSnapshot {
  return runSnapshot(data, new RunState(), view, opts.color ?? 0, opts.maxPoints ?? MAX_POINTS);
}

function mergeChange(into: RunChange | undefined, c: RunChange): RunChange {
  if (!into) return { ...c, tablesFrom: new Map(c.tablesFrom) };
  into.summaryChanged ||= c.summaryChanged;
  into.removed ||= c.removed;
  for (const [k, f] of c.tablesFrom) into.tablesFrom.set(k, Math.min(into.tablesFrom.get(k) ?? Infinity, f));
  if (c.samplesFrom !== undefined) into.samplesFrom = Math.min(into.samplesFrom ?? Infinity, c.samplesFrom);
  if (c.eventsFrom !== undefined) into.eventsFrom = Math.min(into.eventsFrom ?? Infinity, c.eventsFrom);
  if (c.evalsFrom !== undefined) into.evalsFrom = Math.min(into.evalsFrom ?? Infinity, c.evalsFrom);
  return into;
}

/**
 * The state of one dashboard panel: its runs, its view, what the webview holds, and the sequence
 * number of the last message. Every message it returns is numbered; a view change or a rewrite
 * of history (a resume repeating steps) yields a fresh snapshot instead of a delta.
 */
export class DashboardModel {
  private seq = 0;
  private readonly states = new Map<RunKey, RunState>();
  private pending = new Map<RunKey, RunChange>();
  private needSnapshot = false;
  /** A snapshot computed ahead of time, valid until anything changes. */
  private prepared: HostMessage<'snapshot'> | undefined;

  constructor(
    private readonly store: RunStoreApi,
    readonly keys: readonly RunKey[],
    public view: ViewState,
    readonly maxPoints = MAX_POINTS,
  ) {}

  /** Runs of this panel that the store still has. */
  private runs(): [RunKey, RunData, number][] {
    return this.keys.flatMap((k, i) => {
      const d = this.store.get(k);
      return d ? [[k, d, i] as [RunKey, RunData, number]] : [];
    });
  }

  /**
   * Computes the first snapshot ahead of "ready" (the panel calls this while the webview loads,
   * which takes about as long): a snapshot asked for before anything changed is then instant.
   */
  prepare(): void {
    this.prepared = this.snapshot();
  }

  snapshot(): HostMessage<'snapshot'> {
    const prepared = this.prepared;
    this.prepared = undefined;
    if (prepared) return prepared;
    this.pending.clear();
    this.needSnapshot = false;
    this.states.clear();
    const runs = this.runs().map(([k, d, i]) => {
      const state = new RunState();
      this.states.set(k, state);
      return runSnapshot(d, state, this.view, i, this.maxPoints);
    });
    return {
      type: 'snapshot',
      seq: ++this.seq,
      view: this.view,
      maxPoints: this.maxPoints,
      keys: [...this.keys],
      runs,
    };
  }

  setView(patch: Partial<ViewState>): void {
    const same = (Object.keys(patch) as (keyof ViewState)[]).every(
      (k) => JSON.stringify(patch[k]) === JSON.stringify(this.view[k]),
    );
    if (same) return;
    const axisChanged = patch.xAxis !== undefined && patch.xAxis !== this.view.xAxis;
    this.view = { ...this.view, ...patch, ...(axisChanged && !('range' in patch) ? { range: null } : {}) };
    this.needSnapshot = true;
    this.prepared = undefined;
  }

  /** Records a store change; true if it concerns this panel. */
  accept(change: RunChange): boolean {
    if (!this.keys.includes(change.key)) return false;
    this.prepared = undefined;
    this.pending.set(change.key, mergeChange(this.pending.get(change.key), change));
    return true;
  }

  get dirty(): boolean {
    return this.needSnapshot || this.pending.size > 0;
  }

  /** The next message for the webview: a delta of what changed, a snapshot if needed, or nothing. */
  next(): HostMessage<'snapshot'> | HostMessage<'delta'> | undefined {
    if (this.needSnapshot || this.states.size === 0) return this.dirty ? this.snapshot() : undefined;
    const runs: RunDelta[] = [];
    for (const [key, change] of this.pending) {
      const data = this.store.get(key);
      const state = this.states.get(key);
      if (change.removed || !data || !state || this.rewritesHistory(data, state, change)) return this.snapshot();
      runs.push(this.runDelta(key, data, state, change));
    }
    this.pending.clear();
    return runs.length ? { type: 'delta', seq: ++this.seq, runs } : undefined;
  }

  /** A rewrite moves x of other tables too (tokens lookup, relative-time origin): start over. */
  private rewritesHistory(data: RunData, state: RunState, change: RunChange): boolean {
    if (runStart(data) !== state.t0) return true;
    for (const [kind, from] of change.tablesFrom) if (from < (state.tableLengths.get(kind) ?? 0)) return true;
    return false;
  }

  private runDelta(key: RunKey, data: RunData, state: RunState, change: RunChange): RunDelta {
    const series: SeriesChunk[] = [];
    for (const [kind, from] of change.tablesFrom) {
      const table = data.tables.get(kind);
      if (!table) continue;
      state.tableLengths.set(kind, table.length);
      for (const field of table.fields.keys()) {
        const sent = state.series.get(seriesId(kind, field));
        // A zoomed view past this change's rows does not move.
        if (this.view.range && sent && from > sent.hi) continue;
        series.push(seriesChunk(data, state, table, field, this.view, this.maxPoints, sent ? from : 0));
      }
    }
    const index = this.keys.indexOf(key);
    const t0 = state.t0;
    // New train records may settle the x of evals sent before them: those are sent again.
    const evalsFrom = Math.min(change.evalsFrom ?? Infinity, change.tablesFrom.size ? state.evalsUnsettled : Infinity);
    return {
      key,
      header: change.summaryChanged ? runHeader(data, index) : null,
      series,
      events:
        change.eventsFrom !== undefined
          ? {
              from: change.eventsFrom,
              items: eventMarks(data, data.events.slice(change.eventsFrom), this.view.xAxis, t0),
            }
          : null,
      samples:
        change.samplesFrom !== undefined
          ? { from: change.samplesFrom, items: data.samples.slice(change.samplesFrom).map(sampleItem) }
          : null,
      evals: Number.isFinite(evalsFrom)
        ? { from: evalsFrom, items: evalItems(data, state, evalsFrom, this.view.xAxis) }
        : null,
    };
  }
}
