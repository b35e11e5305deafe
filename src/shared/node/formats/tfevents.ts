// TensorBoard event files of one run folder (events.out.tfevents.* directly in it; TensorBoard makes
// each sub-folder its own run): each file read incrementally by the shared reader with the TFRecord
// framer, decoded by src/shared/formats/tfevents.ts. New files are picked up on the next pass, in
// name order (the name starts with the writer's start time). A file whose length checksum is wrong
// is read no further and said once. A file that starts over (truncated, or replaced as a sync does)
// is read again alone when its rows are the end of the run's tables (the newest file, as it mostly
// is): the batch cuts the tables back to its first step (FormatBatch.cut). When another file has
// rows at or after that step (two writers at once), the store's one table per kind cannot drop only
// its rows, and the whole run starts over.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { EventFileDecoder } from '../../formats/tfevents';
import { tfrecordFramer } from '../../formats/tfrecord';
import { IncrementalReader } from '../reader';
import { NO_REPLAY, type Replay } from '../../formats/stepMerge';
import { kindOf } from '../../metricFields';
import {
  emptyBatch,
  mergeBatch,
  type Cut,
  type FormatBatch,
  type RunFormatReader,
  type SourcePosition,
  type SourcePositions,
} from './batch';

export const isEventFileName = (name: string): boolean => name.startsWith('events.out.tfevents.');

/** One event file from a byte offset. */
export class EventFileReader {
  private readonly reader: IncrementalReader;
  private readonly decoder = new EventFileDecoder();
  /** What was handed out before a restart (see Replay); forgotten when the file starts over. */
  private replay: Replay;

  constructor(
    readonly path: string,
    from: SourcePosition = { at: 0, ...NO_REPLAY },
  ) {
    this.reader = new IncrementalReader(path, tfrecordFramer, { offset: from.at });
    this.replay = { sent: from.sent, open: from.open };
  }

  get offset(): number {
    return this.reader.offset;
  }

  get position(): SourcePosition {
    return {
      at: this.decoder.resumeAt() ?? this.reader.offset,
      sent: Math.max(this.replay.sent, this.reader.offset),
      open: this.decoder.openSteps(),
    };
  }

  /** True once a bad length checksum stopped the file. */
  get stopped(): boolean {
    return this.decoder.stopped;
  }

  async read(): Promise<FormatBatch> {
    const batch = emptyBatch();
    if (this.decoder.stopped) return batch;
    for await (const event of this.reader.read()) {
      if (event.kind === 'reset') {
        this.decoder.reset();
        this.replay = NO_REPLAY;
        mergeBatch(batch, emptyBatch(true));
        continue;
      }
      const records: { bytes: Uint8Array; end: number }[] = [];
      for (const frame of event.frames) {
        if (frame.kind === 'record') records.push({ bytes: frame.bytes, end: frame.end });
        else if (frame.end > this.replay.sent) batch.malformed++;
      }
      const decoded = this.decoder.decode(records, this.replay);
      mergeBatch(batch, {
        reset: false,
        metrics: decoded.metrics,
        samples: decoded.samples,
        malformed: decoded.malformed,
      });
      if (decoded.stopped) {
        batch.problem = `${this.path}: a record's length checksum is wrong at byte ${event.offset}; the rest of the file is not read.`;
        break;
      }
    }
    return batch;
  }
}

/** The steps one file has handed out, per table kind and for samples: where its rows are in the run. */
class StepSpans {
  private readonly spans = new Map<string, { first: number; last: number }>();

  /** `complete`: the file was read from its start (a follow resumed mid-file has not seen all its rows). */
  constructor(readonly complete: boolean) {}

  note(batch: FormatBatch): void {
    for (const m of batch.metrics) this.add(kindOf(m), m.step);
    for (const s of batch.samples) this.add(SAMPLES, s.step);
  }

  private add(kind: string, step: number): void {
    const span = this.spans.get(kind);
    if (!span) this.spans.set(kind, { first: step, last: step });
    else this.spans.set(kind, { first: Math.min(span.first, step), last: Math.max(span.last, step) });
  }

  /** Whether this file has a row of `kind` at or after `step`. */
  reaches(kind: string, step: number): boolean {
    return (this.spans.get(kind)?.last ?? -Infinity) >= step;
  }

  /** The cut that drops exactly this file's rows, if no file in `others` has rows at or after them. */
  cutAlone(others: readonly StepSpans[]): Cut | undefined {
    if (!this.complete || others.some((o) => !o.complete)) return undefined;
    for (const [kind, { first }] of this.spans) if (others.some((o) => o.reaches(kind, first))) return undefined;
    const tables: Record<string, number> = {};
    for (const [kind, { first }] of this.spans) if (kind !== SAMPLES) tables[kind] = first;
    const samples = this.spans.get(SAMPLES)?.first;
    return samples === undefined ? { tables } : { tables, samples };
  }
}

/** StepSpans' key for samples (a table kind is never empty). */
const SAMPLES = '';

export class EventFolderReader implements RunFormatReader {
  readonly format = 'tfevents' as const;
  private files = new Map<string, EventFileReader>();
  private spans = new Map<string, StepSpans>();

  constructor(
    readonly dir: string,
    /** Where to resume each file (by name); a file not named starts at 0. */
    private from: SourcePositions = {},
  ) {}

  positions(): SourcePositions {
    const out: SourcePositions = {};
    for (const [name, file] of this.files) out[name] = file.position;
    return out;
  }

  async read(): Promise<FormatBatch> {
    const batch = emptyBatch();
    for (const name of await listEventFiles(this.dir)) {
      if (!this.files.has(name)) this.files.set(name, new EventFileReader(join(this.dir, name), this.from[name]));
    }
    for (const [name, file] of this.files) {
      const more = await file.read();
      if (more.reset) {
        const cut = this.spansOf(name).cutAlone([...this.spans].filter(([n]) => n !== name).map(([, s]) => s));
        if (!cut) return this.startOver();
        more.reset = false;
        more.cut = cut;
        this.spans.set(name, new StepSpans(true));
      }
      this.spansOf(name).note(more);
      mergeBatch(batch, more);
    }
    return batch;
  }

  private spansOf(name: string): StepSpans {
    let spans = this.spans.get(name);
    if (!spans) this.spans.set(name, (spans = new StepSpans((this.from[name]?.at ?? 0) === 0)));
    return spans;
  }

  private async startOver(): Promise<FormatBatch> {
    this.files = new Map();
    this.spans = new Map();
    this.from = {};
    const batch = await this.read();
    batch.reset = true;
    return batch;
  }
}

export async function listEventFiles(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries
      .filter((e) => e.isFile() && isEventFileName(e.name))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}
