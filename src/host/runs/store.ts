// The run store: every observed run folder, kept current by a RunTracker each, with change
// notifications batched so a trainer writing hundreds of lines a second costs the views at most
// one RunChange per run per flush interval.
import { resolve } from 'node:path';
import { FormatDetector, openFormatReader, type FolderFormat } from '../../shared/node/formats/detect';
import { LocalFormatSource } from './formatSource';
import { RunTracker, type TrackerReport, type RunSource } from './runTracker';
import type { SlurmJob } from '../slurm/jobState';
import type { Disposable, RunChange, RunData, RunKey, RunStoreApi, RunTarget } from './types';

export interface RunStoreOptions {
  /** Change notifications are batched over this interval. Default 150 ms. */
  flushMs?: number;
  /** Fallback poll of every file and folder (fs.watch does the fast path). Default 2000 ms. */
  pollMs?: number;
  /** How often an active run's pid is checked. Default 3000 ms. */
  aliveCheckMs?: number;
  /** Use fs.watch. Default true; false leaves only the poll (tests, or file systems without events). */
  watch?: boolean;
  /** Where failures nobody awaits are reported (the Steelscope log in the extension). Default stderr. */
  log?: HostLogger;
}

/** The part of a log (vscode's LogOutputChannel in the extension) that vscode-free modules use. */
export interface HostLogger {
  error(message: string, ...args: unknown[]): void;
}

const stderrLog: HostLogger = {
  error: (message, ...args) => process.stderr.write(`steelscope: ${message} ${args.map(String).join(' ')}\n`),
};

export function runKey(target: RunTarget, dir: string): RunKey {
  return `${target.id}::${dir}`;
}

interface UndecidedFolder {
  detector: FormatDetector;
  target: RunTarget;
  /** The poll that asks again; none when the store does not poll (pollMs 0): refresh() asks. */
  timer?: NodeJS.Timeout;
}

export class RunStore implements RunStoreApi, Disposable {
  private readonly trackers = new Map<RunKey, RunTracker>();
  private readonly data = new Map<RunKey, RunData>();
  private readonly listeners = new Set<(change: RunChange) => void>();
  private readonly pending = new Map<RunKey, RunChange>();
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly flushMs: number;
  private readonly trackerOptions: { pollMs: number; aliveCheckMs: number; watch: boolean };
  private readonly log: HostLogger;
  /** Local folders whose format no file told yet, asked again each poll (FormatDetector). */
  private readonly undecided = new Map<RunKey, UndecidedFolder>();

  constructor(options: RunStoreOptions = {}) {
    this.flushMs = options.flushMs ?? 150;
    this.log = options.log ?? stderrLog;
    this.trackerOptions = { pollMs: options.pollMs ?? 2000, aliveCheckMs: options.aliveCheckMs ?? 3000, watch: options.watch ?? true };
  }

  get runs(): ReadonlyMap<RunKey, RunData> {
    return this.data;
  }

  get(key: RunKey): RunData | undefined {
    return this.data.get(key);
  }

  onDidChange(listener: (change: RunChange) => void): Disposable {
    this.listeners.add(listener);
    return { dispose: () => this.listeners.delete(listener) };
  }

  /**
   * Starts observing a run folder (ours with run.json, a foreign one with only metrics.jsonl, or one
   * in another format src/shared/node/formats/detect.ts knows) and returns its key; adding a folder twice returns the same key. Await `whenIdle()` for the
   * initial ingest.
   */
  addRun(target: RunTarget, dir: string): RunKey {
    const absolute = resolve(dir);
    const key = runKey(target, absolute);
    if (this.trackers.has(key)) return key;
    if (target.id !== 'local') return this.startTracker(key, target, absolute);
    const detector = new FormatDetector(absolute);
    const format = detector.detect();
    this.startTracker(key, target, absolute, this.formatSource(absolute, format));
    if (format === undefined) this.detectLater(key, target, detector);
    return key;
  }

  private startTracker(key: RunKey, target: RunTarget, dir: string, source?: RunSource): RunKey {
    const tracker = new RunTracker(key, target, dir, this.trackerOptions, (delta) => this.record(key, delta), source);
    this.trackers.set(key, tracker);
    this.data.set(key, tracker.data);
    this.record(key, { summary: true });
    tracker.start();
    return key;
  }

  /** A local folder in a foreign format is read by its format's reader, pushed to the tracker. */
  private formatSource(dir: string, format: FolderFormat | undefined): RunSource | undefined {
    if (format === undefined || format === 'steelscope') return undefined;
    return new LocalFormatSource(dir, openFormatReader(dir, format), this.trackerOptions);
  }

  /**
   * A local folder added before any file told its format (a TensorBoard or CSV run just launched)
   * is read as ours meanwhile, and asked again each poll and refresh until a file tells: then a
   * foreign one gets a tracker reading it by its format, and views start that run over.
   */
  private detectLater(key: RunKey, target: RunTarget, detector: FormatDetector): void {
    const { pollMs } = this.trackerOptions;
    const timer = pollMs > 0 ? setInterval(() => this.redetect(key), pollMs) : undefined;
    timer?.unref();
    this.undecided.set(key, { detector, target, timer });
  }

  private redetect(key: RunKey): void {
    const pending = this.undecided.get(key);
    const format = pending?.detector.detect();
    if (!pending || format === undefined) return;
    this.stopDetecting(key);
    if (format === 'steelscope') return; // its tracker reads our files already
    const old = this.trackers.get(key);
    old?.dispose();
    const dir = pending.detector.dir;
    this.startTracker(key, pending.target, dir, this.formatSource(dir, format));
    // Whatever the views were shown of the folder so far is replaced: from the start.
    for (const kind of old?.data.tables.keys() ?? []) this.record(key, { table: { kind, from: 0 } });
    this.record(key, { samplesFrom: 0, eventsFrom: 0, evalsFrom: 0 });
  }

  private stopDetecting(key: RunKey): void {
    clearInterval(this.undecided.get(key)?.timer);
    this.undecided.delete(key);
  }

  /**
   * Observes a run whose files live elsewhere (an SSH host): `source` pushes the records, run.json
   * and checkpoints that local readers would produce. `dir` is the host's path, kept as given (a
   * POSIX path, never resolved against this machine). The store disposes the source with the run.
   */
  addRemoteRun(target: RunTarget, dir: string, source: RunSource): RunKey {
    const key = runKey(target, dir);
    if (this.trackers.has(key)) {
      source.dispose();
      return key;
    }
    return this.startTracker(key, target, dir, source);
  }

  /** The Slurm job of a run as last polled on its login node (src/host/slurm/jobWatch.ts). */
  setJob(key: RunKey, job: SlurmJob | undefined): void {
    this.trackers.get(key)?.setJob(job);
  }

  /** Stops observing a run; listeners get a last change with `removed: true`. */
  removeRun(key: RunKey): boolean {
    const tracker = this.trackers.get(key);
    if (!tracker) return false;
    this.stopDetecting(key);
    tracker.dispose();
    this.trackers.delete(key);
    this.data.delete(key);
    this.pending.set(key, { key, summaryChanged: true, tablesFrom: new Map(), removed: true });
    this.scheduleFlush();
    return true;
  }

  /** Re-reads every file of every run now (an explicit refresh), then resolves. */
  async refresh(): Promise<void> {
    for (const key of [...this.undecided.keys()]) this.redetect(key);
    await Promise.all([...this.trackers.values()].map((t) => t.refresh()));
  }

  /** Resolves once no read is in flight for any run: the initial ingest after addRun, for example. */
  async whenIdle(): Promise<void> {
    await Promise.all([...this.trackers.values()].map((t) => t.whenIdle()));
  }

  /** Delivers pending changes now. */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const changes = [...this.pending.values()];
    this.pending.clear();
    for (const change of changes) {
      for (const listener of [...this.listeners]) {
        try {
          listener(change);
        } catch (err) {
          // One broken view must not starve the others of updates.
          this.log.error('a run-change listener failed', err);
        }
      }
    }
  }

  dispose(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    for (const key of [...this.undecided.keys()]) this.stopDetecting(key);
    for (const tracker of this.trackers.values()) tracker.dispose();
    this.trackers.clear();
    this.data.clear();
    this.pending.clear();
    this.listeners.clear();
  }

  private record(key: RunKey, delta: TrackerReport): void {
    let change = this.pending.get(key);
    if (!change) this.pending.set(key, (change = { key, summaryChanged: false, tablesFrom: new Map() }));
    if (delta.summary) change.summaryChanged = true;
    if (delta.table) change.tablesFrom.set(delta.table.kind, Math.min(change.tablesFrom.get(delta.table.kind) ?? Infinity, delta.table.from));
    if (delta.samplesFrom !== undefined) change.samplesFrom = Math.min(change.samplesFrom ?? Infinity, delta.samplesFrom);
    if (delta.eventsFrom !== undefined) change.eventsFrom = Math.min(change.eventsFrom ?? Infinity, delta.eventsFrom);
    if (delta.evalsFrom !== undefined) change.evalsFrom = Math.min(change.evalsFrom ?? Infinity, delta.evalsFrom);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => this.flush(), this.flushMs);
    this.flushTimer.unref();
  }
}
