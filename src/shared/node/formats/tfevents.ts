// TensorBoard event files of one run folder (events.out.tfevents.* directly in it; TensorBoard makes
// each sub-folder its own run): each file read incrementally by the shared reader with the TFRecord
// framer, decoded by src/shared/formats/tfevents.ts. New files are picked up on the next pass, in
// name order (the name starts with the writer's start time). A file whose length checksum is wrong
// is read no further and said once; a reset of one file starts the whole run over (the store keeps
// one table per run, so the other files are read again too).
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { EventFileDecoder } from '../../formats/tfevents';
import { tfrecordFramer } from '../../formats/tfrecord';
import { IncrementalReader } from '../reader';
import { NO_REPLAY, type Replay } from '../../formats/stepMerge';
import {
  emptyBatch,
  mergeBatch,
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
    const batch = emptyBatch();
    for (const name of await listEventFiles(this.dir)) {
      if (!this.files.has(name)) this.files.set(name, new EventFileReader(join(this.dir, name), this.from[name]));
    }
    for (const file of this.files.values()) {
      const more = await file.read();
      if (more.reset) return this.startOver();
      mergeBatch(batch, more);
    }
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
