// What every run-folder format reader hands out per pass: the records the store already ingests
// (metrics and samples, as our JSONL files hold them), and what was skipped.
import type { MetricRecord, SampleRecord } from '../../run';
import type { Replay } from '../../formats/stepMerge';
import { kindOf } from '../../metricFields';

export interface FormatBatch {
  /** True when what this reader handed out before must be dropped (a file truncated or replaced). */
  reset: boolean;
  metrics: MetricRecord[];
  samples: SampleRecord[];
  /** Records skipped in this pass (bad checksums, rows without a step, ...). */
  malformed: number;
  /** One line saying which file and what is wrong with it (a bad length checksum, a quote that never closes). */
  problem?: string;
  /**
   * Set when one source file of several started over (truncated or replaced), or wrote rows under
   * rows a later-named file had handed out: before this batch's records are added, rows at or after
   * `tables[kind]` are dropped from each table named, and samples at or after `samples`; the batch
   * then holds every file's rows from those steps on, in file-name order (the files other than the
   * one that changed are read again only from where their rows reach those steps). A reset drops
   * everything instead.
   */
  cut?: Cut;
}

export interface Cut {
  tables: Record<string, number>;
  samples?: number;
}

export function emptyBatch(reset = false): FormatBatch {
  return { reset, metrics: [], samples: [], malformed: 0 };
}

/** Appends `more` to `into` (a reset in `more` drops what `into` held). */
export function mergeBatch(into: FormatBatch, more: FormatBatch): void {
  if (more.reset) {
    into.reset = true;
    into.metrics = [];
    into.samples = [];
    into.malformed = 0;
  }
  if (more.cut) {
    const cut = more.cut;
    into.metrics = into.metrics.filter((m) => !(m.step >= (cut.tables[kindOf(m)] ?? Infinity)));
    into.samples = into.samples.filter((s) => !(s.step >= (cut.samples ?? Infinity)));
    into.cut = lowerCut(into.cut, cut);
  }
  for (const m of more.metrics) into.metrics.push(m);
  for (const s of more.samples) into.samples.push(s);
  into.malformed += more.malformed;
  into.problem = more.problem ?? into.problem;
}

/** Two cuts as one: the lower step of each. */
export function lowerCut(a: Cut | undefined, b: Cut): Cut {
  if (!a) return b;
  const tables = { ...a.tables };
  for (const [kind, step] of Object.entries(b.tables)) tables[kind] = Math.min(tables[kind] ?? Infinity, step);
  const samples = Math.min(a.samples ?? Infinity, b.samples ?? Infinity);
  return Number.isFinite(samples) ? { tables, samples } : { tables };
}

/**
 * Where a reader of one source file stands, to resume after a restart (`steelscope follow --from`)
 * with nothing lost or repeated: it reads again from `at` (the start of the steps still open, so
 * they are handed out whole again: a repeated step rewrites its row); see Replay for the rest.
 */
export interface SourcePosition extends Replay {
  at: number;
  /**
   * The lowest and highest steps of the rows the file handed out (a TensorBoard file): a resumed
   * reader knows where they lie, so the file starting over cuts them alone (absent: not known).
   */
  rows?: { first: Cut; last: Cut };
}

/** Source files by their path relative to the run folder. */
export type SourcePositions = Record<string, SourcePosition>;

/** One run folder's reader: a pass reads what was added since the last one. */
export interface RunFormatReader {
  readonly format: RunFormat;
  read(): Promise<FormatBatch>;
  /** Where each source file's reading stands (after the last pass). */
  positions(): SourcePositions;
}

export type RunFormat = 'tfevents' | 'csv' | 'trainer-state';
