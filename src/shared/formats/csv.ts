// CSV metric logs (metrics.csv of Lightning's and Fabric's CSVLogger, litgpt's CSV logger, our own
// Export Metrics as CSV): a header row, then one row per log call with sparse columns. Each
// non-empty numeric cell is a point of the series its column names, at the row's step.
//
// - The step column is `step` (a row without a step is skipped as malformed); a time column (`t`,
//   `time`, `timestamp`, `wall_time`, `_timestamp`; seconds or ms, told apart by size) gives the
//   wall time, else the time is unknown (NaN); `kind` (our export) names the row's table, else
//   columns named val*/eval*/test* go to the eval table and the rest to train.
// - Python writes nan, inf and -inf: read as the NaN/Infinity markers.
// - Records end at a '\n' outside quotes (RFC 4180: a quoted cell may hold newlines, as Python's csv
//   module writes a text column such as a sample): csvFramer below. A partial quoted record at the
//   end of the file waits for the rest, as any partial record does. A row spans at most
//   MAX_ROW_LINES lines: a quote that is still open that many lines on (a stray `"`) makes its first
//   line a malformed row, and framing starts again at the next line.
// - A header row again (Lightning rewrites the file with a wider header when a new metric appears;
//   the reader sees a replaced file and starts over) is taken as the new header.
// Hand-written: no CSV package is a dependency here, and the usual ones (csv-parse, papaparse) parse a
// stream from its start and keep their quote state inside; the shared reader needs each record's
// byte end to resume at (src/shared/node/reader.ts) and a framer that starts at any record
// boundary. Quote parity is all the framing RFC 4180 needs: a doubled "" inside a cell counts twice.
import { encodeMetric, type MetricRecord } from '../run';
import { NEWLINE, newlineEnded, type Framer, type Span } from '../framing';
import { kindOfTag } from './tfevents';
import { NO_REPLAY, StepMerger, takesPoint, type Replay } from './stepMerge';

const TIME_COLUMNS = new Set(['t', 'time', 'timestamp', 'wall_time', '_timestamp']);
/** Columns that are never series. */
const NOT_SERIES = new Set(['step', 'kind', 'run', ...TIME_COLUMNS]);

const QUOTE = 0x22;

/** How many quote bytes `bytes[from, to)` holds. */
function quotesIn(bytes: Uint8Array, from: number, to: number): number {
  let n = 0;
  for (let q = bytes.indexOf(QUOTE, from); q !== -1 && q < to; q = bytes.indexOf(QUOTE, q + 1)) n++;
  return n;
}

/**
 * The most lines one row may span (its quoted cells hold at most one fewer line breaks). A generated
 * text of a hundred lines fits; a stray quote costs the rows of the next hundred lines a wait, not
 * the rest of the file: when they are written its line is skipped and they are read.
 */
export const MAX_ROW_LINES = 100;

/**
 * CSV records: each ends at a newline outside quotes (an odd number of quotes since the record's
 * start means the newline is inside a cell). A record whose quote is still open at its
 * MAX_ROW_LINES-th newline ends at its first newline instead, an odd number of quotes in it (the
 * decoder counts it as malformed), and the next record starts on the line after it. Stateless: the
 * same bytes frame the same from any record boundary (a resumed reader agrees with the first).
 * A record longer than the cap is skipped to the next newline, as a JSONL line is.
 */
export const csvFramer: Framer = {
  frame(window: Uint8Array): Span[] {
    const spans: Span[] = [];
    let start = 0;
    let quotes = 0;
    let lines = 0;
    let firstNewline = -1;
    let from = 0;
    for (let nl = window.indexOf(NEWLINE); nl !== -1; nl = window.indexOf(NEWLINE, from)) {
      quotes += quotesIn(window, from, nl);
      from = nl + 1;
      if (quotes % 2 === 1 && ++lines < MAX_ROW_LINES) {
        if (firstNewline === -1) firstNewline = nl;
        continue; // inside a quoted cell
      }
      const end = quotes % 2 === 1 ? (firstNewline === -1 ? nl : firstNewline) : nl;
      spans.push({ start, end, next: end + 1 });
      [start, from, quotes, lines, firstNewline] = [end + 1, end + 1, 0, 0, -1];
    }
    return spans;
  },
  ...newlineEnded,
};

/** Whether a record holds a quote that never closes (what csvFramer ends after MAX_ROW_LINES lines). */
export function hasOpenQuote(record: Uint8Array): boolean {
  return quotesIn(record, 0, record.length) % 2 === 1;
}

/** One CSV record's cells (RFC 4180 quoting: "a ""b""" is a "b"). */
export function splitCsvLine(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      cells.push(cell);
      cell = '';
    } else cell += c;
  }
  cells.push(cell);
  return cells;
}

/** A cell as a number (Python's nan/inf spellings included), or undefined for text and empty cells. */
export function csvNumber(cell: string): number | undefined {
  const text = cell.trim();
  if (text === '') return undefined;
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (lower === 'inf' || lower === 'infinity' || lower === '+inf') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

/** Seconds since the epoch or ms, told apart by size (1e11 s is the year 5138; 1e11 ms is 1973). */
export function toMs(time: number): number {
  return Math.abs(time) < 1e11 ? time * 1000 : time;
}

export interface CsvBatch {
  metrics: MetricRecord[];
  malformed: number;
  /** Where the first row with a quote that never closes starts (a file offset), if any. */
  openQuoteAt?: number;
}

const utf8 = new TextDecoder();

export class CsvDecoder {
  private header: string[] | undefined;
  private readonly merger = new StepMerger();

  /** The file starts over: the next line is its header. */
  reset(): void {
    this.header = undefined;
    this.merger.clear();
  }

  get hasHeader(): boolean {
    return this.header !== undefined;
  }

  /** Takes the header from the file's first line (a reader resumed past it). */
  setHeader(line: Uint8Array): void {
    this.header = splitCsvLine(utf8.decode(line).replace(/\r$/, '')).map((c) => c.trim());
  }

  /**
   * Decodes lines in file order; `end` is each one's offset just past its newline. Rows read again
   * after a restart (see Replay) hand out only points of the steps still open then.
   */
  decode(lines: readonly { bytes: Uint8Array; end: number }[], replay: Replay = NO_REPLAY): CsvBatch {
    let malformed = 0;
    let openQuoteAt: number | undefined;
    for (const { bytes, end } of lines) {
      if (hasOpenQuote(bytes)) {
        if (end > replay.sent) malformed++;
        openQuoteAt ??= end - bytes.length - 1;
        continue;
      }
      const line = utf8.decode(bytes).replace(/\r$/, '');
      if (line.trim() === '') continue;
      const cells = splitCsvLine(line);
      if (!this.header || isHeader(cells)) {
        this.setHeader(bytes);
        continue;
      }
      if (!this.row(this.header, cells, { start: end - bytes.length - 1, end }, replay) && end > replay.sent)
        malformed++;
    }
    const metrics = this.merger.take();
    return openQuoteAt === undefined ? { metrics, malformed } : { metrics, malformed, openQuoteAt };
  }

  /** Where a restarted reader must start to rebuild the open steps whole; undefined: where it stands. */
  resumeAt(): number | undefined {
    return this.merger.earliestOpen();
  }

  /** Per kind, the step still open. */
  openSteps(): Record<string, number> {
    return this.merger.openSteps();
  }

  /** One data row's points (`at`: where the row is in the file); false when it has no step. */
  private row(
    header: readonly string[],
    cells: readonly string[],
    at: { start: number; end: number },
    replay: Replay,
  ): boolean {
    let step: number | undefined;
    let t = NaN;
    let rowKind: string | undefined;
    header.forEach((name, i) => {
      const cell = cells[i] ?? '';
      if (name === 'step') step = csvNumber(cell);
      else if (name === 'kind' && cell.trim() !== '') rowKind = cell.trim();
      else if (TIME_COLUMNS.has(name)) t = toMs(csvNumber(cell) ?? NaN);
    });
    if (step === undefined || !Number.isSafeInteger(step)) return false;
    header.forEach((name, i) => {
      const value = csvNumber(cells[i] ?? '');
      if (value === undefined || NOT_SERIES.has(name) || name === '') return;
      const kind = rowKind ?? kindOfTag(name);
      if (takesPoint(replay, at.end, kind, step as number))
        this.merger.add(kind, step as number, t, name, encodeMetric(value), at.start);
    });
    return true;
  }
}

/** A header row: a `step` cell and no numeric cell. */
function isHeader(cells: readonly string[]): boolean {
  return cells.some((c) => c.trim() === 'step') && cells.every((c) => csvNumber(c) === undefined);
}
