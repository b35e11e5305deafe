// Follows one append-only JSONL file by byte offset: the observer's half of the run-directory
// contract. Plain Node (no `vscode`), so it is unit-tested and reused by every target that can
// read files locally.
//
// - A last line without its newline is not yet a line: it waits, unconsumed.
// - A truncated file (size < offset), a replaced one (other inode, or no newline just before our
//   offset) or a deleted one is re-read from the start, announced with `reset: true` so consumers
//   drop what they had from this file.
// - Malformed lines are skipped and counted, never fatal.
// - fs.watch on the parent folder (it survives the file being replaced or not existing yet) wakes
//   reads; a slow stat poll is the fallback where watching fails or is unavailable. One read is in
//   flight per file; requests during a read coalesce into one more read.
import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { parseJsonl } from '../../shared/run';
import { CoalescedTask } from './coalesce';
import type { Disposable } from './types';

export interface TailerOptions {
  /** Slow fallback poll (a stat, and a read only if the file changed). Default 2000 ms; 0 disables. */
  pollMs?: number;
  /** Wake on fs.watch events of the parent folder. Default true. */
  watch?: boolean;
  /** Bytes read per chunk (a longer line grows the buffer for itself). Default 4 MiB. */
  chunkBytes?: number;
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

const NEWLINE = 0x0a;

export class JsonlTailer<T> implements Disposable {
  private readonly records = new Emitter<[T[], RecordBatch]>();
  private readonly malformedLines = new Emitter<[number, number]>();
  private readonly pollMs: number;
  private readonly useWatch: boolean;
  private readonly chunkBytes: number;
  private consumed = 0;
  private malformedTotal = 0;
  /** Identity of the file we read from: inode, or undefined before the first read. */
  private inode: number | undefined;
  private lastStat = '';
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
    this.chunkBytes = Math.max(1024, options.chunkBytes ?? 4 * 1024 * 1024);
  }

  /** Byte offset just past the last complete line consumed. */
  get offset(): number {
    return this.consumed;
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
    let signature: string;
    try {
      const s = await stat(this.path);
      signature = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      signature = 'missing';
    }
    if (signature !== this.lastStat) await this.readNow();
  }

  private async readOnce(): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err; // kept as lastError; the next read tries again
      this.lastStat = 'missing';
      if (this.inode !== undefined) this.restart(undefined, true); // deleted: what we had is gone
      return;
    }
    try {
      const s = await handle.stat();
      this.lastStat = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (this.inode !== s.ino || s.size < this.consumed || !(await this.endsLineAt(handle, this.consumed))) {
        if (this.inode !== undefined) this.restart(s.ino, this.consumed > 0 || this.malformedTotal > 0);
        this.inode = s.ino;
      }
      await this.readFrom(handle);
    } finally {
      await handle.close();
    }
    if (this.resetPending && !this.disposed) this.emitBatch([]); // truncated to nothing: still tell consumers
  }

  private restart(inode: number | undefined, hadContent: boolean): void {
    this.inode = inode;
    this.consumed = 0;
    this.malformedTotal = 0;
    if (hadContent) this.resetPending = true;
    if (inode === undefined && this.resetPending) this.emitBatch([]);
  }

  /** A replaced file that happens to reuse the inode shows up as a byte other than '\n' before our offset. */
  private async endsLineAt(handle: FileHandle, offset: number): Promise<boolean> {
    if (offset === 0) return true;
    const one = Buffer.alloc(1);
    const { bytesRead } = await handle.read(one, 0, 1, offset - 1);
    return bytesRead === 1 && one[0] === NEWLINE;
  }

  private async readFrom(handle: FileHandle): Promise<void> {
    let buffer = Buffer.allocUnsafe(this.chunkBytes);
    while (!this.disposed) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.consumed);
      if (bytesRead === 0) return;
      const chunk = parseJsonl(buffer.subarray(0, bytesRead), this.accept);
      if (chunk.consumed === 0) {
        if (bytesRead < buffer.length) return; // only a partial last line: it waits
        buffer = Buffer.allocUnsafe(buffer.length * 2); // one line longer than the buffer
        continue;
      }
      this.consumed += chunk.consumed;
      const full = bytesRead === buffer.length;
      if (buffer.length > this.chunkBytes) buffer = Buffer.allocUnsafe(this.chunkBytes); // the long line is behind us
      if (chunk.malformed > 0) {
        this.malformedTotal += chunk.malformed;
        this.malformedLines.emit(chunk.malformed, this.malformedTotal);
      }
      if (chunk.records.length > 0 || this.resetPending) this.emitBatch(chunk.records);
      if (!full) return;
    }
  }

  private emitBatch(records: T[]): void {
    const reset = this.resetPending;
    this.resetPending = false;
    this.records.emit(records, { reset, offset: this.consumed });
  }
}
