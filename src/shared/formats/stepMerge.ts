// Foreign loggers write the values of one step in several records (TensorBoard: one event per tag;
// Lightning's CSV: a row for training and another for validation at the same step). The series
// table keeps one row per step and kind, and a repeated step rewrites that row (a resumed run), so
// the points of one step are merged into one record per kind before they reach it.
import type { MetricRecord, MetricValue } from '../run';

export class StepMerger {
  /** Per kind, the record of the step last logged: later points of that step join it. */
  private readonly open = new Map<string, MetricRecord>();
  /** Records created or changed since the last take(), in order. */
  private pending: MetricRecord[] = [];
  private readonly pendingSet = new Set<MetricRecord>();

  clear(): void {
    this.open.clear();
    this.pending = [];
    this.pendingSet.clear();
  }

  /** Adds one point. A record already handed out is never changed: it is copied, and the copy (with every point of its step) is handed out again. */
  add(kind: string, step: number, t: number, series: string, value: MetricValue): void {
    const open = this.open.get(kind);
    let record: MetricRecord;
    if (open && open.step === step) record = this.pendingSet.has(open) ? open : { ...open };
    else record = kind === 'train' ? { step, t } : { step, t, kind };
    if (Number.isFinite(t) || !Number.isFinite(record.t)) record.t = t;
    record[series] = value;
    this.open.set(kind, record);
    if (!this.pendingSet.has(record)) {
      this.pendingSet.add(record);
      this.pending.push(record);
    }
  }

  /** The records made or changed since the last call, in the order their steps were first logged. */
  take(): MetricRecord[] {
    const out = this.pending;
    this.pending = [];
    this.pendingSet.clear();
    return out;
  }
}
