// Follows one append-only JSONL file by byte offset for the extension: the shared incremental
// reader (src/shared/node/reader.ts: partial last line, truncation, replacement, deletion, the
// record cap, regular files only) with the JSONL decoding (src/shared/jsonl.ts), plus what only the
// host needs: listeners, and waking up.
//
// - A reset (truncated, replaced or deleted file) is announced with `reset: true` on the next
//   batch so consumers drop what they had from this file.
// - Malformed and oversized lines are skipped and counted, never fatal.
// - fs.watch on the parent folder (it survives the file being replaced or not existing yet) wakes
//   reads; a slow stat poll is the fallback where watching fails or is unavailable. One read is in
//   flight per file; requests during a read coalesce into one more read.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { decodeJsonLine, jsonlFramer } from '../../shared/jsonl';
import { currentSignature, IncrementalReader, type Frame } from '../../shared/node/reader';
import { CoalescedTask } from './coalesce';
import type { Disposable } from './types';

export interface TailerOptions {
  /** Slow fallback poll (a stat, and a read only if the file changed). Default 2000 ms; 0 disables. */
  pollMs?: number;
  /** Wake on fs.watch events of the parent folder. Default true. */
  watch?: boolean;
  /** Bytes read per chunk. Default 1 MiB. */
  chunkBytes?: number;
  /** Longer lines are skipped as malformed. Default MAX_RECORD_BYTES (16 MiB); tests pass less. */
  maxRecordBytes?: number;
}

export interface RecordBatch {
  /** True on the first batch after the file was truncated, replaced or deleted. */
  reset: boolean;
  /** Byte offset just past the last complete line consumed. */
  offset: number;
}

type Listener<A extends unknown[]> = (...args: A) => void;

class Emitter<A extends unknown[]> {
  private readonly listeners = new Set<Listener<A>>();
  on(listener: Listener<A>): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }
  emit(...args: A): void {
    for (const listener of [...this.listeners]) listener(...args);
  }
  clear(): void {
    this.listeners.clear();
  }
}

export class JsonlTailer<T> implements Disposable {
  private readonly records = new Emitter<[T[], RecordBatch]>();
  private readonly malformedLines = new Emitter<[number, number]>();
  private readonly pollMs: number;
  private readonly useWatch: boolean;
  private readonly reader: IncrementalReader;
  private malformedTotal = 0;
  private resetPending = false;
  private readonly reads = new CoalescedTask(() => this.readOnce());
  private watcher: FSWatcher | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private disposed = false;

  constructor(
    readonly path: string,
    private readonly accept: (value: unknown) => value is T,
    options: TailerOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 2000;
    this.useWatch = options.watch ?? true;
    this.reader = new IncrementalReader(path, jsonlFramer, { chunkBytes: options.chunkBytes, maxRecordBytes: options.maxRecordBytes });
  }

  /** Byte offset just past the last complete line consumed. */
  get offset(): number {
    return this.reader.offset;
  }

  /** Malformed lines skipped in the current file (a reset starts the count again). */
  get malformed(): number {
    return this.malformedTotal;
  }

  onRecords(listener: (records: T[], batch: RecordBatch) => void): Disposable {
    return this.records.on(listener);
  }

  /** `added` lines were skipped in the last read; `total` since the file was last (re)started. */
  onMalformed(listener: (added: number, total: number) => void): Disposable {
    return this.malformedLines.on(listener);
  }

  /** Starts watching and polling, and reads what is already there. */
  start(): void {
    if (this.disposed) return;
    if (this.useWatch) this.watchFolder();
    if (this.pollMs > 0 && !this.pollTimer) {
      this.pollTimer = setInterval(() => void this.poll(), this.pollMs);
      this.pollTimer.unref();
    }
    void this.readNow();
  }

  /** Reads everything appended since the last read. Coalesced: at most one read in flight. */
  readNow(): Promise<void> {
    return this.reads.run();
  }

  /** Resolves once no read is in flight (a read requested meanwhile included). */
  whenIdle(): Promise<void> {
    return this.reads.whenIdle();
  }

  /** Why the last read failed (other than the file not existing), if it did. */
  get lastError(): unknown {
    return this.reads.lastError;
  }

  dispose(): void {
    this.disposed = true;
    this.reads.stop();
    this.watcher?.close();
    this.watcher = undefined;
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.records.clear();
    this.malformedLines.clear();
  }

  private watchFolder(): void {
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, filename) => {
        // Some platforms omit the name; then any change in the folder is worth a read.
        if (!filename || filename.toString() === name) void this.readNow();
      });
      // Too many watches (ENOSPC/EMFILE) or the folder vanishing: the poll carries on alone.
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined; // the folder does not exist (yet): the poll finds the file when it appears
    }
  }

  /** The poll costs one stat while nothing changes. */
  private async poll(): Promise<void> {
    if (this.useWatch && !this.watcher) this.watchFolder();
    if ((await currentSignature(this.path)) !== this.reader.signature) await this.readNow();
  }

  private async readOnce(): Promise<void> {
    try {
      for await (const event of this.reader.read()) {
        if (this.disposed) return;
        if (event.kind === 'reset') {
          this.malformedTotal = 0;
          this.resetPending = true;
        } else if (event.frames.length > 0) {
          this.deliver(event.frames);
        }
      }
    } finally {
      if (this.resetPending && !this.disposed) this.emitBatch([]); // truncated to nothing: still tell consumers
    }
  }

  private deliver(frames: readonly Frame[]): void {
    const records: T[] = [];
    let malformed = 0;
    for (const frame of frames) {
      const line = frame.kind === 'record' ? decodeJsonLine(frame.bytes, this.accept) : { kind: 'malformed' as const };
      if (line.kind === 'record') records.push(line.value);
      else if (line.kind === 'malformed') malformed++;
    }
    if (malformed > 0) {
      this.malformedTotal += malformed;
      this.malformedLines.emit(malformed, this.malformedTotal);
    }
    if (records.length > 0 || this.resetPending) this.emitBatch(records);
  }

  private emitBatch(records: T[]): void {
    const reset = this.resetPending;
    this.resetPending = false;
    this.records.emit(records, { reset, offset: this.reader.offset });
  }
}

