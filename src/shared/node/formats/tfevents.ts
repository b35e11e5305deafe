// TensorBoard event files of one run folder (events.out.tfevents.* directly in it; TensorBoard makes
// each sub-folder its own run): each file read incrementally by the shared reader with the TFRecord
// framer, decoded by src/shared/formats/tfevents.ts. New files are picked up on the next pass, in
// name order (the name starts with the writer's start time). A file whose length checksum is wrong
// is read no further and said once.
//
// The run's tables are what reading the files in name order gives (a step logged again replaces
// the rows from that step on: seriesTable.ts). One rule keeps them so when a file changes under the
// others' rows: a file that starts over (truncated, replaced as a sync does, deleted), or that writes
// rows under rows a later-named file handed out (two writers at once), is read again alone; the
// batch cuts the tables back to the lowest step it touches (FormatBatch.cut: the file's old first
// step and its new rows' lowest), and every other file whose rows reach that step hands them out
// again, read from its bytes from a mark before them (./stepIndex.ts), all in name order. When the
// newest file starts over, no other file reaches the cut and nothing else is read. A file resumed
// mid-way (follow --from) knows where its earlier rows lie from its position (SourcePosition.rows);
// only one resumed from a position without them starts the whole run over when it starts over.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { EventFileDecoder } from '../../formats/tfevents';
import { tfrecordFramer } from '../../formats/tfrecord';
import { IncrementalReader, readRange } from '../reader';
import { NO_REPLAY, type Replay } from '../../formats/stepMerge';
import {
  emptyBatch,
  lowerCut,
  mergeBatch,
  type Cut,
  type FormatBatch,
  type RunFormatReader,
  type SourcePosition,
  type SourcePositions,
} from './batch';
import { lowestSteps, MARK_BYTES, reaches, rowsFrom, StepIndex, type LastSteps } from './stepIndex';

export const isEventFileName = (name: string): boolean => name.startsWith('events.out.tfevents.');

/** One event file from a byte offset. */
export class EventFileReader {
  private readonly reader: IncrementalReader;
  private readonly decoder = new EventFileDecoder();
  /** What was handed out before a restart (see Replay); forgotten when the file starts over. */
  private replay: Replay;
  /** Where this file's rows lie in the run (started anew when the file starts over). */
  private stepIndex: StepIndex;

  constructor(
    readonly path: string,
    from: SourcePosition = { at: 0, ...NO_REPLAY },
  ) {
    this.reader = new IncrementalReader(path, tfrecordFramer, { offset: from.at });
    this.replay = { sent: from.sent, open: from.open };
    this.stepIndex = new StepIndex(from);
  }

  get index(): StepIndex {
    return this.stepIndex;
  }

  get offset(): number {
    return this.reader.offset;
  }

  /** Just past the last record whose rows were handed out, by this reader or the one it resumes. */
  get sent(): number {
    return Math.max(this.replay.sent, this.reader.offset);
  }

  get position(): SourcePosition {
    const rows = this.stepIndex.rows();
    return {
      at: this.decoder.resumeAt() ?? this.reader.offset,
      sent: this.sent,
      open: this.decoder.openSteps(),
      ...(rows ? { rows } : {}),
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
        this.stepIndex = new StepIndex();
        mergeBatch(batch, emptyBatch(true));
        continue;
      }
      const records: { bytes: Uint8Array; end: number }[] = [];
      for (const frame of event.frames) {
        if (frame.kind === 'record') records.push({ bytes: frame.bytes, end: frame.end });
        else if (frame.end > this.replay.sent) batch.malformed++;
      }
      if (this.decode(records, batch)) {
        batch.problem = `${this.path}: a record's length checksum is wrong at byte ${event.offset}; the rest of the file is not read.`;
        break;
      }
    }
    return batch;
  }

  /** Decodes records into the batch, noting in the step index where their rows are; true when the file stopped. */
  private decode(records: readonly { bytes: Uint8Array; end: number }[], batch: FormatBatch): boolean {
    for (const group of markedGroups(records)) {
      const decoded = this.decoder.decode(group, this.replay);
      this.stepIndex.note(decoded, group[group.length - 1].end);
      mergeBatch(batch, {
        reset: false,
        metrics: decoded.metrics,
        samples: decoded.samples,
        malformed: decoded.malformed,
      });
      if (decoded.stopped) return true;
    }
    return false;
  }

  /**
   * The rows this file handed out before `to` that the cut drops, read again from its bytes (from a
   * mark before the first of them): the run gets them back after the cut.
   */
  async readAgain(cut: Cut, to: number): Promise<Pick<FormatBatch, 'metrics' | 'samples'>> {
    const decoder = new EventFileDecoder(this.decoder.knownPlugins);
    const out: Pick<FormatBatch, 'metrics' | 'samples'> = { metrics: [], samples: [] };
    for await (const frames of readRange(this.path, tfrecordFramer, this.stepIndex.startFor(cut, to), to)) {
      const records: { bytes: Uint8Array; end: number }[] = [];
      for (const frame of frames) if (frame.kind === 'record') records.push(frame);
      const again = rowsFrom(cut, decoder.decode(records));
      for (const m of again.metrics) out.metrics.push(m);
      for (const x of again.samples) out.samples.push(x);
    }
    return out;
  }
}

/** Records in runs of about MARK_BYTES, so the step index gets a mark that often even in one large chunk. */
function* markedGroups<R extends { bytes: Uint8Array }>(records: readonly R[]): Generator<R[]> {
  let group: R[] = [];
  let bytes = 0;
  for (const record of records) {
    group.push(record);
    bytes += record.bytes.length;
    if (bytes >= MARK_BYTES) {
      yield group;
      [group, bytes] = [[], 0];
    }
  }
  if (group.length > 0) yield group;
}

/** One file's part in a folder pass: where it stood before, and what it read. */
interface FilePass {
  file: EventFileReader;
  /** Where it stood before the pass (EventFileReader.sent): rows before it were handed out already. */
  before: number;
  /** The rows it had handed out: their first steps (undefined: not known) and highest steps. */
  first: Cut | undefined;
  last: LastSteps;
  more: FormatBatch;
}

export class EventFolderReader implements RunFormatReader {
  readonly format = 'tfevents' as const;
  private files = new Map<string, EventFileReader>();

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
    for (const name of await listEventFiles(this.dir)) {
      if (!this.files.has(name)) this.files.set(name, new EventFileReader(join(this.dir, name), this.from[name]));
    }
    const passes: FilePass[] = [];
    for (const [, file] of [...this.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const [before, first, last] = [file.sent, file.index.firstSteps(), file.index.lastSteps()];
      passes.push({ file, before, first, last, more: await file.read() });
    }
    const cut = cutOf(passes);
    if (cut === START_OVER) return this.startOver();
    const batch = emptyBatch();
    for (const pass of passes) {
      if (cut && !pass.more.reset && reaches(pass.last, cut))
        mergeBatch(batch, { ...emptyBatch(), ...(await pass.file.readAgain(cut, pass.before)) });
      mergeBatch(batch, { ...pass.more, reset: false });
    }
    if (cut) batch.cut = cut;
    return batch;
  }

  private async startOver(): Promise<FormatBatch> {
    this.files = new Map();
    this.from = {};
    const batch = await this.read();
    batch.reset = true;
    return batch;
  }
}

const START_OVER = 'start over';

/**
 * The cut a pass needs (see the top of this file): per file that started over, its old rows' and
 * new rows' lowest steps; per file with rows under a later-named file's rows, its new rows' lowest
 * steps of those kinds. START_OVER when a file that started over does not know where its rows were.
 */
function cutOf(passes: readonly FilePass[]): Cut | typeof START_OVER | undefined {
  let cut: Cut | undefined;
  for (const [i, { more, first }] of passes.entries()) {
    const lowest = lowestSteps(more);
    if (more.reset) {
      if (!first) return START_OVER;
      cut = lowerCut(cut, lowerCut(first, lowest));
      continue;
    }
    const later = passes.slice(i + 1);
    const under: Record<string, number> = {};
    for (const [kind, step] of Object.entries(lowest.tables))
      if (later.some((p) => reaches(p.last, { tables: { [kind]: step } }))) under[kind] = step;
    if (Object.keys(under).length > 0) cut = lowerCut(cut, { tables: under });
  }
  return cut;
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
