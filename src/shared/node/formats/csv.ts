// A CSV metrics log (metrics.csv) read incrementally by the shared reader with a line framer,
// decoded by src/shared/formats/csv.ts. A reader resumed past the header reads the file's first
// line for it; a rewritten file (Lightning widens the header that way) starts over.
import { open } from 'node:fs/promises';
import { CsvDecoder } from '../../formats/csv';
import { jsonlFramer } from '../../jsonl';
import { IncrementalReader } from '../reader';
import { emptyBatch, type FormatBatch, type RunFormatReader } from './batch';

/** Lines end at '\n': JSONL's framer is exactly that (the CR of a CRLF file is dropped by the decoder). */
const lineFramer = jsonlFramer;

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

  constructor(
    readonly path: string,
    offset = 0,
  ) {
    this.reader = new IncrementalReader(path, lineFramer, { offset });
  }

  get offset(): number {
    return this.reader.offset;
  }

  async read(): Promise<FormatBatch> {
    const batch = emptyBatch();
    /** Where the next frames start: past the header once that is not 0. */
    let at = this.reader.offset;
    for await (const event of this.reader.read()) {
      if (event.kind === 'reset') {
        this.decoder.reset();
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
      const lines: Uint8Array[] = [];
      for (const frame of event.frames) {
        if (frame.kind === 'record') lines.push(frame.bytes);
        else batch.malformed++;
      }
      const decoded = this.decoder.decode(lines);
      for (const m of decoded.metrics) batch.metrics.push(m);
      batch.malformed += decoded.malformed;
    }
    return batch;
  }
}
