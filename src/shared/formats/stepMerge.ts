// Foreign loggers write the values of one step in several records (TensorBoard: one event per tag;
// Lightning's CSV: a row for training and another for validation at the same step). The series
// table keeps one row per step and kind, and a repeated step rewrites that row (a resumed run), so
// the points of one step are merged into one record per kind before they reach it.
import type { MetricRecord, MetricValue } from '../run';

/**
 * What a reader restarted at an earlier offset (to rebuild the steps still open) must not hand out
 * again: samples and errors of records ending at or before `sent`, and, of those records, points
 * of steps other than the ones still open then (`open`: per kind), which are complete already.
 */
export interface Replay {
  sent: number;
  open?: Record<string, number>;
}

export const NO_REPLAY: Replay = { sent: 0 };

/** Whether a point of the record ending at `end` is taken (not a repeat of a complete step). */
export function takesPoint(replay: Replay, end: number, kind: string, step: number): boolean {
  return end > replay.sent || replay.open?.[kind] === step;
}

export class StepMerger {
  /** Per kind, the record of the step last logged: later points of that step join it. */
  private readonly open = new Map<string, MetricRecord>();
  /** Records created or changed since the last take(), in order. */
  private pending: MetricRecord[] = [];
  private readonly pendingSet = new Set<MetricRecord>();
  /** Per kind, where the source record that opened its step starts (a byte offset, or an entry index). */
  private readonly openAt = new Map<string, number>();

  clear(): void {
    this.open.clear();
    this.openAt.clear();
    this.pending = [];
    this.pendingSet.clear();
  }

  /** Adds one point. A record already handed out is never changed: it is copied, and the copy (with every point of its step) is handed out again. */
  add(kind: string, step: number, t: number, series: string, value: MetricValue, at = 0): void {
    const open = this.open.get(kind);
    let record: MetricRecord;
    if (open && open.step === step) record = this.pendingSet.has(open) ? open : { ...open };
    else {
      record = kind === 'train' ? { step, t } : { step, t, kind };
      this.openAt.set(kind, at);
    }
    if (Number.isFinite(t) || !Number.isFinite(record.t)) record.t = t;
    record[series] = value;
    this.open.set(kind, record);
    if (!this.pendingSet.has(record)) {
      this.pendingSet.add(record);
      this.pending.push(record);
    }
  }

  /**
   * Where a reader resuming after a restart must start so that the open steps are rebuilt whole
   * (their records handed out again, complete); undefined when nothing is open.
   */
  earliestOpen(): number | undefined {
    return this.openAt.size === 0 ? undefined : Math.min(...this.openAt.values());
  }

  /** Per kind, the step still open (its record may get more points). */
  openSteps(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [kind, record] of this.open) out[kind] = record.step;
    return out;
  }

  /** The records made or changed since the last call, in the order their steps were first logged. */
  take(): MetricRecord[] {
    const out = this.pending;
    this.pending = [];
    this.pendingSet.clear();
    return out;
  }
}
