// The one incremental reader of an append-only log file, from a byte offset. Every follower of a
// run folder reads through it: the extension's tailer (src/host/runs/tailer.ts), `steelscope
// follow` (src/cli/commands/follow.ts), and the readers of other log formats, which bring their
// own Framer (src/shared/framing.ts; JSONL's is in src/shared/jsonl.ts). The rules:
//
// - The offset always stands at a record boundary: just past the last complete record handed out.
// - A partial last record waits, unconsumed; its bytes are kept, so the next pass reads only what
//   was appended after them.
// - A truncated file (shorter than the offset), a replaced one (another device/inode, or other
//   bytes just before the offset), or a deleted one starts over from 0, announced by a `reset`
//   when anything had been handed out. An offset given at the start (a resumed follow) must end a
//   record, or the file starts over the same way.
// - A record longer than the cap is handed out as `oversized` (counted as malformed by callers)
//   and moved past as it is read: never buffered whole, never read twice.
// - Only regular files are read (opened non-blocking, so a FIFO cannot hang us): a link to
//   /dev/zero, a device or a folder is refused with NotRegularFileError.
import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { MAX_RECORD_BYTES, RecordAssembler, type Framer } from '../framing';

export interface ReaderOptions {
  /** Where to start: a boundary the caller already read up to (checked). Default 0. */
  offset?: number;
  /** Default MAX_RECORD_BYTES (tests pass a small cap). */
  maxRecordBytes?: number;
  /** Bytes read per step. Default 1 MiB. */
  chunkBytes?: number;
}

/** One record read, or one skipped for its size; `end` is the file offset just past it. */
export type Frame =
  { kind: 'record'; bytes: Uint8Array; end: number } | { kind: 'oversized'; end: number; length: number };

export type ReadEvent =
  /** The file was truncated, replaced or deleted: drop what came from it; reading restarts at 0. */
  | { kind: 'reset' }
  /** Records in file order (none when a chunk completed none); `offset` is the reader's offset after them. */
  | { kind: 'frames'; frames: Frame[]; offset: number };

export class NotRegularFileError extends Error {
  constructor(readonly path: string) {
    super(`${path} is not a regular file (a device, pipe or folder, or a link to one): it is not read.`);
    this.name = 'NotRegularFileError';
  }
}

/** How many bytes just before the offset are remembered to notice a file rewritten in place. */
const TAIL_BYTES = 8;

export class IncrementalReader {
  private offsetNow: number;
  /** Where the next read starts: the offset plus what the assembler holds of an unfinished record. */
  private readPos: number;
  private readonly assembler: RecordAssembler;
  private readonly chunkBytes: number;
  /** `dev:ino` of the file last read; undefined before the first read and after a deletion. */
  private identity: string | undefined;
  /** The bytes just before the offset when we last saw them; undefined: check with the framer instead. */
  private tail: Uint8Array | undefined;
  private signatureNow = '';
  /** Bytes of records read from files so far (the check bytes before the offset aside). */
  private readTotal = 0;

  constructor(
    readonly path: string,
    private readonly framer: Framer,
    options: ReaderOptions = {},
  ) {
    this.offsetNow = options.offset ?? 0;
    this.readPos = this.offsetNow;
    this.assembler = new RecordAssembler(framer, options.maxRecordBytes ?? MAX_RECORD_BYTES);
    this.chunkBytes = Math.max(1024, options.chunkBytes ?? 1024 * 1024);
  }

  /** Byte offset just past the last record handed out (or skipped). */
  get offset(): number {
    return this.offsetNow;
  }

  /** The largest run of bytes ever held at once: at most the cap plus one chunk. */
  get peakBufferedBytes(): number {
    return this.assembler.peakWindow;
  }

  /** Every byte of the file is read once, however often it is polled: tests check this count. */
  get bytesRead(): number {
    return this.readTotal;
  }

  /** The file's stat signature as of the last complete pass ('missing' when it did not exist). */
  get signature(): string {
    return this.signatureNow;
  }

  /**
   * One pass: everything complete since the last pass, as events. A pass over an unchanged file
   * costs an open and a stat. Stop early by leaving the loop: the next pass goes on from there.
   */
  async *read(): AsyncGenerator<ReadEvent> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.signatureNow = 'missing';
      yield* this.restart(undefined);
      return;
    }
    try {
      const s = await handle.stat();
      const signature = signatureOf(s);
      if (!s.isFile()) {
        yield* this.restart(undefined);
        this.signatureNow = signature;
        throw new NotRegularFileError(this.path);
      }
      if (signature === this.signatureNow) return;
      if (!(await this.sameFile(handle, s))) yield* this.restart(`${s.dev}:${s.ino}`);
      this.identity = `${s.dev}:${s.ino}`;
      yield* this.readFrom(handle, s.size);
      this.tail = await this.bytesBefore(handle, this.offsetNow);
      this.signatureNow = signature;
    } finally {
      await handle.close();
    }
  }

  private *restart(identity: string | undefined): Generator<ReadEvent> {
    const hadRecords = this.offsetNow > 0;
    this.identity = identity;
    this.offsetNow = 0;
    this.readPos = 0;
    this.tail = undefined;
    this.assembler.clear();
    if (hadRecords) yield { kind: 'reset' };
  }

  /** Whether the file is the one we read up to our offset, only (perhaps) longer. */
  private async sameFile(handle: FileHandle, s: Stats): Promise<boolean> {
    if (this.identity !== undefined && this.identity !== `${s.dev}:${s.ino}`) return false;
    if (s.size < this.offsetNow) return false;
    if (s.size < this.readPos) {
      // Only the unfinished record got shorter: read it again from the offset.
      this.assembler.clear();
      this.readPos = this.offsetNow;
    }
    if (this.offsetNow === 0) return true;
    const before = await this.bytesBefore(handle, this.offsetNow);
    if (this.tail) return Buffer.compare(before, this.tail) === 0;
    return before.length > 0 && this.framer.endsRecord(before);
  }

  private async bytesBefore(handle: FileHandle, offset: number): Promise<Uint8Array> {
    const start = Math.max(0, offset - TAIL_BYTES);
    const bytes = Buffer.alloc(offset - start);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, start);
    return bytes.subarray(0, bytesRead);
  }

  private async *readFrom(handle: FileHandle, size: number): AsyncGenerator<ReadEvent> {
    for (;;) {
      const want = Math.min(this.chunkBytes, Math.max(4096, size - this.readPos));
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await handle.read(chunk, 0, want, this.readPos);
      if (bytesRead === 0) return;
      this.readPos += bytesRead;
      this.readTotal += bytesRead;
      const frames: Frame[] = [];
      this.tail = undefined; // until the pass ends and reads it again
      for (const item of this.assembler.push(chunk.subarray(0, bytesRead))) {
        this.offsetNow += item.length;
        if (item.kind === 'record') frames.push({ kind: 'record', bytes: item.bytes, end: this.offsetNow });
        else frames.push({ kind: 'oversized', end: this.offsetNow, length: item.length });
      }
      // No await between the offset moving and the yield: a consumer sees both together. A chunk
      // without a complete record yields too (no frames), so a consumer can stop a huge read.
      yield { kind: 'frames', frames, offset: this.offsetNow };
      if (bytesRead < want) return;
    }
  }
}

/**
 * The frames of a byte range of a file read once already, so `from` and `to` are record boundaries
 * (a source file handing out again the rows a cut dropped from the run), in chunks of frames. Bytes
 * past `to` are left to the file's own reader, which has not handed them out yet.
 */
export async function* readRange(
  path: string,
  framer: Framer,
  from: number,
  to: number,
  chunkBytes = 1024 * 1024,
): AsyncGenerator<Frame[]> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!(await handle.stat()).isFile()) throw new NotRegularFileError(path);
    const assembler = new RecordAssembler(framer);
    for (let at = from, end = from; at < to;) {
      const chunk = Buffer.allocUnsafe(Math.min(chunkBytes, to - at));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, at);
      if (bytesRead === 0) return; // the file got shorter: its own reader starts it over
      at += bytesRead;
      const frames: Frame[] = [];
      for (const item of assembler.push(chunk.subarray(0, bytesRead))) {
        end += item.length;
        frames.push(
          item.kind === 'record'
            ? { kind: 'record', bytes: item.bytes, end }
            : { kind: 'oversized', end, length: item.length },
        );
      }
      yield frames;
    }
  } finally {
    await handle.close();
  }
}

/** What changes when a file is appended to, truncated or replaced. */
export function signatureOf(s: Stats): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;
}

/** The signature of the file at `path` now: a poll compares it with `reader.signature` before a pass. */
export async function currentSignature(path: string): Promise<string> {
  try {
    return signatureOf(await stat(path));
  } catch {
    return 'missing';
  }
}

/**
 * A small whole file (run.json, a manifest) read the same careful way: a regular file only, and
 * at most `maxBytes` (a longer one is refused, not read to its end).
 */
export async function readRegularFile(path: string, maxBytes = MAX_RECORD_BYTES): Promise<Buffer> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const s = await handle.stat();
    if (!s.isFile()) throw new NotRegularFileError(path);
    const bytes = Buffer.alloc(Math.min(s.size, maxBytes) + 1);
    let length = 0;
    while (length < bytes.length) {
      const { bytesRead } = await handle.read(bytes, length, bytes.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxBytes) throw new Error(`${path} is larger than ${maxBytes} bytes: it is not read.`);
    return bytes.subarray(0, length);
  } finally {
    await handle.close();
  }
}
