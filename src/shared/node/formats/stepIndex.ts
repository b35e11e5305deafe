// Where one source file's rows lie in the run, so that a cut (FormatBatch.cut) re-reads of the other
// files only what it dropped: per table kind (and for samples) the lowest and highest step the file
// handed out, and sparse byte marks saying how far its steps had reached at that point of the file.
// The marks are kept every MARK_BYTES at most (a few hundred for a large file), not per record.
import { kindOf } from '../../metricFields';
import type { Cut, FormatBatch, SourcePosition } from './batch';

/** The key of samples among the table kinds (a table kind is never empty). */
const SAMPLES = '';
/** Bytes between two marks: a cut reads at most this much (plus a chunk) before the rows it needs. */
export const MARK_BYTES = 64 * 1024;

/** Per kind (SAMPLES: samples), the highest step handed out; undefined where it is not known. */
export type LastSteps = ReadonlyMap<string, number> | undefined;

interface Mark {
  /** A record boundary. */
  at: number;
  /** The highest steps of the rows of the records before `at`; undefined: not known (a resumed file). */
  last: LastSteps;
}

export class StepIndex {
  private readonly first = new Map<string, number>();
  private readonly last = new Map<string, number>();
  private readonly marks: Mark[] = [{ at: 0, last: new Map() }];
  /**
   * False for a file whose reading was resumed mid-way (follow --from) from a position without its
   * rows' steps: the rows before that offset were handed out by an earlier process, where unknown.
   */
  private readonly complete: boolean;

  /** `from`: where a resumed reading starts, with the steps of the rows handed out before it. */
  constructor(from: Pick<SourcePosition, 'at' | 'rows'> = { at: 0 }) {
    this.complete = from.at === 0 || from.rows !== undefined;
    if (from.at === 0) return;
    if (from.rows) {
      for (const [steps, into] of [
        [from.rows.first, this.first],
        [from.rows.last, this.last],
      ] as const)
        for (const [kind, step] of stepsOfCut(steps)) into.set(kind, step);
    }
    // Not past the rows before it: the steps known are of every row handed out, before or after it.
    this.marks.push({ at: from.at, last: this.lastSteps() });
  }

  /** Notes the rows decoded from the records before `end` (a record boundary). */
  note(batch: Pick<FormatBatch, 'metrics' | 'samples'>, end: number): void {
    for (const m of batch.metrics) this.add(kindOf(m), m.step);
    for (const s of batch.samples) this.add(SAMPLES, s.step);
    if (end - this.marks[this.marks.length - 1].at >= MARK_BYTES) this.marks.push({ at: end, last: this.lastSteps() });
  }

  /** The cut that drops every row the file handed out; undefined when they are not all known. */
  firstSteps(): Cut | undefined {
    if (!this.complete) return undefined;
    return cutOfSteps(this.first);
  }

  /** The lowest and highest steps handed out, for a resumed reader's position; undefined when not known. */
  rows(): SourcePosition['rows'] {
    return this.complete ? { first: cutOfSteps(this.first), last: cutOfSteps(this.last) } : undefined;
  }

  /** A copy of the highest steps handed out (undefined when not known). */
  lastSteps(): LastSteps {
    return this.complete ? new Map(this.last) : undefined;
  }

  /** Where to read again from to find every row before `to` that the cut dropped. */
  startFor(cut: Cut, to: number): number {
    let start = 0;
    for (const mark of this.marks) if (mark.at <= to && !reaches(mark.last, cut)) start = mark.at;
    return start;
  }

  private add(kind: string, step: number): void {
    this.first.set(kind, Math.min(this.first.get(kind) ?? Infinity, step));
    this.last.set(kind, Math.max(this.last.get(kind) ?? -Infinity, step));
  }
}

/** Whether rows with these highest steps include one the cut drops (rows not known: they may). */
export function reaches(last: LastSteps, cut: Cut): boolean {
  if (last === undefined) return true;
  for (const [kind, step] of Object.entries(cut.tables)) if ((last.get(kind) ?? -Infinity) >= step) return true;
  return cut.samples !== undefined && (last.get(SAMPLES) ?? -Infinity) >= cut.samples;
}

/** The lowest step per kind (and of samples) of a batch's rows, as a cut. */
export function lowestSteps(batch: Pick<FormatBatch, 'metrics' | 'samples'>): Cut {
  const lowest = new Map<string, number>();
  const add = (kind: string, step: number): void => void lowest.set(kind, Math.min(lowest.get(kind) ?? Infinity, step));
  for (const m of batch.metrics) add(kindOf(m), m.step);
  for (const s of batch.samples) add(SAMPLES, s.step);
  return cutOfSteps(lowest);
}

function stepsOfCut(cut: Cut): [string, number][] {
  const steps = Object.entries(cut.tables);
  return cut.samples === undefined ? steps : [...steps, [SAMPLES, cut.samples]];
}

function cutOfSteps(steps: ReadonlyMap<string, number>): Cut {
  const tables: Record<string, number> = {};
  for (const [kind, step] of steps) if (kind !== SAMPLES) tables[kind] = step;
  const samples = steps.get(SAMPLES);
  return samples === undefined ? { tables } : { tables, samples };
}

/** A batch's rows the cut drops (those at or after its steps): what a file hands out again. */
export function rowsFrom(
  cut: Cut,
  batch: Pick<FormatBatch, 'metrics' | 'samples'>,
): Pick<FormatBatch, 'metrics' | 'samples'> {
  return {
    metrics: batch.metrics.filter((m) => m.step >= (cut.tables[kindOf(m)] ?? Infinity)),
    samples: batch.samples.filter((s) => s.step >= (cut.samples ?? Infinity)),
  };
}
