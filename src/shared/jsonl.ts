// JSONL, the run folder's record format: the framer (a record ends at '\n') and the decoding of one
// line, shared by every reader (the extension's tailer, `steelscope follow`, the CLI, tests).
//
// - Blank lines are skipped without counting; a line that is not a JSON object of the expected
//   shape is malformed: skipped and counted, never fatal.
// - Python's json.dumps writes NaN, Infinity and -Infinity as bare tokens, which JSON.parse
//   refuses. Such a line is read with those tokens turned into the strings "NaN", "Infinity",
//   "-Infinity": the run folder's marker for a non-finite value (src/shared/run.ts decodeMetric),
//   so the record keeps its other fields and the value is drawn as a NaN/Inf marker.
import { RecordAssembler, MAX_RECORD_BYTES, NEWLINE, newlineEnded, type Framer, type Span } from './framing';

export const jsonlFramer: Framer = {
  frame(window: Uint8Array): Span[] {
    const spans: Span[] = [];
    let start = 0;
    for (let nl = window.indexOf(NEWLINE); nl !== -1; nl = window.indexOf(NEWLINE, start)) {
      spans.push({ start, end: nl, next: nl + 1 });
      start = nl + 1;
    }
    return spans;
  },
  ...newlineEnded,
};

export type DecodedLine<T> =
  | { kind: 'blank' }
  | { kind: 'malformed' }
  /** `json` is the record as standard JSON: the writer's own text, or it with Python's tokens quoted. */
  | { kind: 'record'; value: T; json: string };

const utf8 = new TextDecoder();

/** One line's bytes (without its newline) as a record of the shape `accept` checks. */
export function decodeJsonLine<T>(bytes: Uint8Array, accept: (value: unknown) => value is T): DecodedLine<T> {
  const text = utf8.decode(bytes).trim();
  if (!text) return { kind: 'blank' };
  const parsed = parseJsonText(text);
  if (parsed === undefined || !accept(parsed.value)) return { kind: 'malformed' };
  return { kind: 'record', value: parsed.value, json: parsed.json };
}

/** JSON.parse, and on failure once more with Python's bare non-finite tokens quoted. */
function parseJsonText(text: string): { value: unknown; json: string } | undefined {
  try {
    return { value: JSON.parse(text), json: text };
  } catch {
    const quoted = quoteNonFiniteTokens(text);
    if (quoted === text) return undefined;
    try {
      return { value: JSON.parse(quoted), json: quoted };
    } catch {
      return undefined;
    }
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * `NaN`, `Infinity` and `-Infinity` outside JSON strings, quoted; strings are left exactly as they
 * are (a prompt saying "NaN" stays a prompt). Hand-written: json5 reads these tokens but also
 * comments, single quotes and trailing commas, which a run folder's JSONL must not accept, and it
 * gives NaN numbers, which JSON.stringify would turn into null.
 */
export function quoteNonFiniteTokens(text: string): string {
  let out = '';
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = endOfString(text, i + 1);
      continue;
    }
    const token = nonFiniteTokenAt(text, i);
    if (token === undefined) {
      i++;
      continue;
    }
    out += `${text.slice(copied, i)}"${token}"`;
    i += token.length;
    copied = i;
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** Index just past the closing quote of the string whose body starts at `i` (or the text's end). */
function endOfString(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
  return i;
}

function nonFiniteTokenAt(text: string, i: number): string | undefined {
  const c = text.charCodeAt(i);
  const token = c === 0x4e ? 'NaN' : c === 0x49 ? 'Infinity' : c === 0x2d ? '-Infinity' : undefined;
  return token !== undefined && text.startsWith(token, i) ? token : undefined;
}

export interface JsonlChunk<T> {
  records: T[];
  /** Byte offset just past the last complete line consumed. */
  consumed: number;
  /** Lines that were not JSON objects of the expected shape, or longer than the cap: skipped. */
  malformed: number;
}

/** A whole JSONL buffer at once (a file read in one go); the last line without its newline is left. */
export function parseJsonl<T>(
  bytes: Uint8Array,
  accept: (value: unknown) => value is T,
  maxRecordBytes = MAX_RECORD_BYTES,
): JsonlChunk<T> {
  const chunk: JsonlChunk<T> = { records: [], consumed: 0, malformed: 0 };
  for (const item of new RecordAssembler(jsonlFramer, maxRecordBytes).push(bytes)) {
    chunk.consumed += item.length;
    const line = item.kind === 'record' ? decodeJsonLine(item.bytes, accept) : { kind: 'malformed' as const };
    if (line.kind === 'record') chunk.records.push(line.value);
    else if (line.kind === 'malformed') chunk.malformed++;
  }
  return chunk;
}
