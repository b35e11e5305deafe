// A CSV metrics log (metrics.csv) read incrementally by the shared reader with the CSV framer,
// decoded by src/shared/formats/csv.ts. A reader resumed past the header reads the file's first
// line for it; a rewritten file (Lightning widens the header that way) starts over. A row whose
// quote never closes is counted as malformed and said once, on the run (FormatBatch.problem).
import { open } from 'node:fs/promises';
import { csvFramer, CsvDecoder, MAX_ROW_LINES } from '../../formats/csv';
import { IncrementalReader } from '../reader';
import { NO_REPLAY, type Replay } from '../../formats/stepMerge';
import { emptyBatch, type FormatBatch, type RunFormatReader, type SourcePosition, type SourcePositions } from './batch';
import { basename } from 'node:path';

/** The bytes of a file's first line (without its newline), read from its first 64 KiB. */
async function firstLine(path: string): Promise<Uint8Array | undefined> {
  const handle = await open(path, 'r');
  try {
    const bytes = Buffer.alloc(64 * 1024);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    const nl = bytes.subarray(0, bytesRead).indexOf(0x0a);
    return nl < 0 ? undefined : bytes.subarray(0, nl);
  } finally {
    await handle.close();
  }
}

export class CsvFileReader implements RunFormatReader {
  readonly format = 'csv' as const;
  private readonly reader: IncrementalReader;
  private readonly decoder = new CsvDecoder();
  /** What was handed out before a restart (see Replay); forgotten when the file starts over. */
  private replay: Replay;
  /** A row with a quote that never closes is said once per reader (the malformed count goes on). */
  private openQuoteSaid = false;

  constructor(
    readonly path: string,
    from: SourcePosition = { at: 0, ...NO_REPLAY },
  ) {
    this.reader = new IncrementalReader(path, csvFramer, { offset: from.at });
    this.replay = { sent: from.sent, open: from.open };
  }

  get offset(): number {
    return this.reader.offset;
  }

  positions(): SourcePositions {
    const at = this.decoder.resumeAt() ?? this.reader.offset;
    return {
      [basename(this.path)]: {
        at,
        sent: Math.max(this.replay.sent, this.reader.offset),
        open: this.decoder.openSteps(),
      },
    };
  }

  async read(): Promise<FormatBatch> {
    const batch = emptyBatch();
    /** Where the next frames start: past the header once that is not 0. */
    let at = this.reader.offset;
    for await (const event of this.reader.read()) {
      if (event.kind === 'reset') {
        this.decoder.reset();
        this.replay = NO_REPLAY;
        batch.reset = true;
        batch.metrics = [];
        batch.malformed = 0;
        at = 0;
        continue;
      }
      const from = at;
      at = event.offset;
      if (event.frames.length === 0) continue;
      if (!this.decoder.hasHeader && from > 0) {
        const header = await firstLine(this.path).catch(() => undefined);
        if (header) this.decoder.setHeader(header);
      }
      const lines: { bytes: Uint8Array; end: number }[] = [];
      for (const frame of event.frames) {
        if (frame.kind === 'record') lines.push({ bytes: frame.bytes, end: frame.end });
        else if (frame.end > this.replay.sent) batch.malformed++;
      }
      const decoded = this.decoder.decode(lines, this.replay);
      for (const m of decoded.metrics) batch.metrics.push(m);
      batch.malformed += decoded.malformed;
      if (decoded.openQuoteAt !== undefined && !this.openQuoteSaid) {
        this.openQuoteSaid = true;
        batch.problem =
          `${this.path}: the row at byte ${decoded.openQuoteAt} opens a quoted cell that is not closed within ` +
          `${MAX_ROW_LINES} lines; that line is skipped as malformed and the rows after it are read.`;
      }
    }
    return batch;
  }
}
