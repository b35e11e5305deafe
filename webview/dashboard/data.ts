// What the webview holds: per run, the downsampled points of every series as the host sent them,
// bucket by bucket, so a delta can replace buckets from `from` on (a live tail, or a rewrite)
// without a full resend. Pure data; no DOM.
import type {
  EvalItem,
  EventMark,
  HostMessage,
  RunDelta,
  RunHeader,
  RunSnapshot,
  SampleItem,
  SeriesChunk,
} from '../../src/shared/protocol';
import type { NonFinite } from '../../src/shared/series';

export interface Pt {
  x: number;
  y: number;
}

export interface MarkerPt extends Pt {
  v: NonFinite;
  step: number;
}

/** Points of consecutive buckets; starts[b] is the index of bucket b's first point. */
export class BucketList<P> {
  pts: P[] = [];
  private starts: number[] = [];

  /** Replaces buckets from `from` on; false if `from` is past what is held (a lost message). */
  apply(from: number, counts: number[], make: (i: number) => P): boolean {
    if (from > this.starts.length) return false;
    if (from < this.starts.length) {
      this.pts = this.pts.slice(0, this.starts[from]);
      this.starts.length = from;
    } else {
      this.pts = this.pts.slice();
    }
    let i = 0;
    for (const n of counts) {
      this.starts.push(this.pts.length);
      for (let k = 0; k < n; k++, i++) this.pts.push(make(i));
    }
    return true;
  }
}

export class SeriesData {
  readonly raw = new BucketList<Pt>();
  smooth: BucketList<Pt> | null = null;
  readonly markers = new BucketList<MarkerPt>();
  total = 0;
  stride = 1;

  constructor(
    readonly kind: string,
    readonly field: string,
  ) {}

  apply(c: SeriesChunk): boolean {
    this.total = c.total;
    this.stride = c.stride;
    let ok = this.raw.apply(c.from, c.raw.n, (i) => ({ x: c.raw.x[i], y: c.raw.y[i] }));
    ok &&= this.markers.apply(c.from, c.markers.n, (i) => ({
      x: c.markers.x[i],
      y: 0.97,
      v: c.markers.v[i],
      step: c.markers.step[i],
    }));
    const s = c.smooth;
    if (s) {
      if (c.from === 0 || !this.smooth) this.smooth = new BucketList<Pt>();
      ok &&= this.smooth.apply(c.from, s.n, (i) => ({ x: s.x[i], y: s.y[i] }));
    } else {
      this.smooth = null;
    }
    return ok;
  }
}

export class RunModel {
  readonly series = new Map<string, SeriesData>();
  events: EventMark[] = [];
  samples: SampleItem[] = [];
  evals: EvalItem[] = [];

  constructor(public header: RunHeader) {}

  static fromSnapshot(s: RunSnapshot): RunModel {
    const run = new RunModel(s.header);
    for (const c of s.series) run.applySeries(c);
    run.events = s.events;
    run.samples = s.samples;
    run.evals = s.evals;
    return run;
  }

  applySeries(c: SeriesChunk): boolean {
    const id = `${c.kind}/${c.field}`;
    let s = this.series.get(id);
    if (!s) this.series.set(id, (s = new SeriesData(c.kind, c.field)));
    return s.apply(c);
  }

  /** False if the delta does not fit what is held: ask for a fresh snapshot. */
  applyDelta(d: RunDelta): boolean {
    if (d.header) this.header = d.header;
    for (const c of d.series) if (!this.applySeries(c)) return false;
    if (d.events) {
      if (d.events.from > this.events.length) return false;
      this.events = [...this.events.slice(0, d.events.from), ...d.events.items];
    }
    if (d.samples) {
      if (d.samples.from > this.samples.length) return false;
      this.samples = [...this.samples.slice(0, d.samples.from), ...d.samples.items];
    }
    if (d.evals) {
      if (d.evals.from > this.evals.length) return false;
      this.evals = [...this.evals.slice(0, d.evals.from), ...d.evals.items];
    }
    return true;
  }
}

/** Snapshot/delta sequencing: a gap in numbering means a lost message. */
export class DashboardData {
  runs = new Map<string, RunModel>();
  seq = -1;

  snapshot(m: HostMessage<'snapshot'>): void {
    this.seq = m.seq;
    this.runs = new Map(m.runs.map((r) => [r.header.key, RunModel.fromSnapshot(r)]));
  }

  /** Applies a delta; returns the keys it touched, or null when a fresh snapshot is needed. */
  delta(m: HostMessage<'delta'>): Set<string> | null {
    if (this.seq < 0 || m.seq !== this.seq + 1) return null;
    this.seq = m.seq;
    const touched = new Set<string>();
    for (const d of m.runs) {
      const run = this.runs.get(d.key);
      if (!run || !run.applyDelta(d)) return null;
      touched.add(d.key);
    }
    return touched;
  }
}
