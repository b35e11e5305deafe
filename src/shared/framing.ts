// Record framing: how a stream of bytes (a log file read from an offset, or an SSH channel's
// stdout) becomes whole records. A Framer knows one format's record boundaries (JSONL: a newline;
// TensorBoard's length-prefixed records in src/shared/formats/tfrecord.ts); the RecordAssembler
// applies the rules that are the same for every format, in this one place:
//
// - a record is complete only when the framer finds its end: a partial last record waits;
// - a record longer than MAX_RECORD_BYTES is skipped and reported as oversized, and its bytes are
//   never held: the assembler moves past them as they arrive, without buffering or re-reading them;
// - chunks are kept in a list and joined once, when one of them can complete a record, so a long
//   record arriving in many small chunks costs one copy, not one per chunk.
//
// Pure (no Node APIs): the file reader (src/shared/node/tail.ts) and the remote follower use it.

/**
 * The size cap of one record (its bytes, without the delimiter). Nothing read from a run folder is
 * trusted: a longer record is counted as malformed and skipped. Documented in README (run directory).
 */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/** One record found in a window: its payload is window[start, end); the next record starts at `next`. */
export interface Span {
  start: number;
  end: number;
  next: number;
}

/**
 * Moves past the rest of an oversized record: given the bytes that follow what was already
 * skipped, how many of them still belong to the record, or undefined when all of them do.
 */
export type Skipper = (bytes: Uint8Array) => number | undefined;

export interface Framer {
  /** The complete records at the front of `window`, which starts at a record boundary, in order. */
  frame(window: Uint8Array): Span[];
  /**
   * Whether `chunk`, appended to bytes that hold no complete record, can complete one. A framer
   * may answer true when unsure (it only costs a join); false must be certain.
   */
  mayComplete(chunk: Uint8Array): boolean;
  /**
   * A skipper for a record already longer than the cap; `head` is its first bytes (up to 64) and
   * `seen` how many of its bytes are already behind us (a length-prefixed format needs both).
   */
  skipper(head: Uint8Array, seen: number): Skipper;
  /** Whether the bytes just before an offset (up to 8) can end a record: checks a resumed offset. */
  endsRecord(before: Uint8Array): boolean;
}

export const NEWLINE = 0x0a;

/**
 * The rules of a format whose records end at '\n' (JSONL, CSV): all but `frame`, which differs
 * where a newline may sit inside a record (a quoted CSV cell).
 */
export const newlineEnded: Omit<Framer, 'frame'> = {
  mayComplete: (chunk) => chunk.includes(NEWLINE),
  skipper: () => (bytes) => {
    const nl = bytes.indexOf(NEWLINE);
    return nl === -1 ? undefined : nl + 1;
  },
  endsRecord: (before) => before.length === 0 || before[before.length - 1] === NEWLINE,
};

/** What the assembler hands out, in stream order; `length` counts every byte it spans, delimiter included. */
export type Assembled = { kind: 'record'; bytes: Uint8Array; length: number } | { kind: 'oversized'; length: number };

export class RecordAssembler {
  private chunks: Uint8Array[] = [];
  private chunkBytes = 0;
  /** Set while moving past an oversized record; `skipped` is how much of it is behind us. */
  private skipping: Skipper | undefined;
  private skipped = 0;
  /** The largest window ever joined (tests check it stays within the cap plus one chunk). */
  peakWindow = 0;

  constructor(
    private readonly framer: Framer,
    readonly maxRecordBytes = MAX_RECORD_BYTES,
  ) {}

  /** Bytes taken in but not yet handed out (a partial record, or the part of an oversized one seen so far). */
  get pendingBytes(): number {
    return this.chunkBytes + this.skipped;
  }

  /** Forgets everything pending (the stream starts over). */
  clear(): void {
    this.chunks = [];
    this.chunkBytes = 0;
    this.skipping = undefined;
    this.skipped = 0;
  }

  /** Takes the next bytes of the stream; returns the records (and oversized ones) they complete. */
  push(chunk: Uint8Array): Assembled[] {
    const out: Assembled[] = [];
    if (this.skipping) {
      const rest = this.skipping(chunk);
      if (rest === undefined) {
        this.skipped += chunk.length;
        return out;
      }
      out.push({ kind: 'oversized', length: this.skipped + rest });
      this.skipping = undefined;
      this.skipped = 0;
      chunk = chunk.subarray(rest);
    }
    if (chunk.length === 0) return out;
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    if (this.framer.mayComplete(chunk)) this.assemble(out);
    if (this.chunkBytes > this.maxRecordBytes) this.startSkipping();
    return out;
  }

  /** Joins the pending chunks once and hands out every complete record in them. */
  private assemble(out: Assembled[]): void {
    const window = this.window();
    let used = 0;
    for (const span of this.framer.frame(window)) {
      const length = span.next - used;
      if (span.end - span.start > this.maxRecordBytes) out.push({ kind: 'oversized', length });
      else out.push({ kind: 'record', bytes: window.subarray(span.start, span.end), length });
      used = span.next;
    }
    const rest = window.subarray(used);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.chunkBytes = rest.length;
  }

  /** The pending record is past the cap without an end: drop its bytes and skip the rest as it comes. */
  private startSkipping(): void {
    this.skipping = this.framer.skipper(this.head(64), this.chunkBytes);
    this.skipped = this.chunkBytes;
    this.chunks = [];
    this.chunkBytes = 0;
  }

  /** The first `n` pending bytes (a record's header), without joining the rest. */
  private head(n: number): Uint8Array {
    const head = new Uint8Array(Math.min(n, this.chunkBytes));
    let at = 0;
    for (const chunk of this.chunks) {
      if (at === head.length) break;
      const part = chunk.subarray(0, head.length - at);
      head.set(part, at);
      at += part.length;
    }
    return head;
  }

  private window(): Uint8Array {
    const window = this.chunks.length === 1 ? this.chunks[0] : concat(this.chunks, this.chunkBytes);
    this.peakWindow = Math.max(this.peakWindow, window.length);
    return window;
  }
}

function concat(chunks: readonly Uint8Array[], total: number): Uint8Array {
  const joined = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    joined.set(c, at);
    at += c.length;
  }
  return joined;
}
