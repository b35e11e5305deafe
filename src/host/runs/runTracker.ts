// Everything the store knows about one run folder, kept current: the three JSONL files tailed,
// run.json re-read when it changes (ignored while half-written or invalid), the checkpoints folder
// rescanned, and the trainer's pid checked while run.json says it is active. One fs.watch on the
// run folder (and one on checkpoints/) wakes the readers; a slow poll is the fallback.
import { watch, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import {
  isActiveStatus,
  isEventRecord,
  isMetricRecord,
  isSampleRecord,
  observeRunInfo,
  type EventRecord,
  type MetricRecord,
  type Observed,
  type ObservedRun,
  type SampleRecord,
} from '../../shared/run';
import { readRegularFile } from '../../shared/node/reader';
import { primaryLossField } from '../../shared/metricFields';
import {
  markBest,
  sameCheckpoints,
  scanCheckpoints,
  scoreByEvals,
  type CheckpointScanCache,
} from '../../shared/node/checkpoints';
import { CoalescedTask } from './coalesce';
import { appendRecord, appendSystemRecord, cutTable, kindOf, lastValue, newSeriesTable } from './seriesTable';
import { isSystemRecord, SYSTEM_FILE, SYSTEM_KIND, type SystemRecord } from '../../shared/system';
import { EVALS_FILE, isEvalRecord, type EvalRecord } from '../../shared/eval';
import { JsonlTailer } from './tailer';
import { statusWithJob, type SlurmJob } from '../slurm/jobState';
import { nameOfFolder } from './runControl';
import type { CheckpointSummary, RunData, RunDisplayStatus, RunKey, RunSummary, RunTarget, SeriesTable } from './types';

export interface TrackerOptions {
  pollMs: number;
  aliveCheckMs: number;
  watch: boolean;
}

/** The JSONL files by their short name. */
export type LogFile = 'metrics' | 'samples' | 'events' | 'system' | 'evals';

/** A batch of records a pushed source read from one file, as a local tailer would deliver it. */
export type PushedBatch =
  /** `cut`: per kind, rows at or after this step are dropped first (one source file started over). */
  | { file: 'metrics'; records: MetricRecord[]; reset: boolean; cut?: Record<string, number> }
  /** `cutFrom`: samples at or after this step are dropped first. */
  | { file: 'samples'; records: SampleRecord[]; reset: boolean; cutFrom?: number }
  | { file: 'events'; records: EventRecord[]; reset: boolean }
  | { file: 'system'; records: SystemRecord[]; reset: boolean }
  | { file: 'evals'; records: EvalRecord[]; reset: boolean };

/** Where a pushed source delivers what it reads. */
export interface RunSink {
  batch(batch: PushedBatch): void;
  /** Malformed lines skipped so far in the current file (a reset starts the count again). */
  malformed(file: LogFile, total: number): void;
  /** run.json as read and checked there (observeRunInfo). */
  runInfo(observed: Observed): void;
  checkpoints(list: CheckpointSummary[]): void;
}

/**
 * A run whose files are read elsewhere (an SSH host's `steelscope follow`) and pushed here,
 * instead of tailed from this machine's disk. The tracker calls start once and dispose once.
 */
export interface RunSource {
  start(sink: RunSink): void;
  dispose(): void;
  /** Resolves once what is pending has been delivered (tests, explicit refresh). */
  whenIdle?(): Promise<void>;
}

/** What one tracker reports to the store; the store merges these into one RunChange per flush. */
export interface TrackerReport {
  summary?: boolean;
  table?: { kind: string; from: number };
  samplesFrom?: number;
  eventsFrom?: number;
  evalsFrom?: number;
}

export function displayStatus(
  info: ObservedRun | undefined,
  alive: boolean | undefined,
  job?: SlurmJob,
): RunDisplayStatus {
  if (job) return statusWithJob(info, alive, job);
  if (!info) return 'unknown';
  if (isActiveStatus(info.status) && alive === false) return 'stale';
  return info.status;
}

export class RunTracker {
  readonly data: RunData;
  private readonly tables = new Map<string, SeriesTable>();
  private readonly samples: SampleRecord[] = [];
  private readonly events: EventRecord[] = [];
  private readonly evals: EvalRecord[] = [];
  /** The local readers; undefined for a pushed run (`source`). */
  private readonly tails:
    | {
        metrics: JsonlTailer<MetricRecord>;
        samples: JsonlTailer<SampleRecord>;
        events: JsonlTailer<EventRecord>;
        system: JsonlTailer<SystemRecord>;
        evals: JsonlTailer<EvalRecord>;
      }
    | undefined;
  private readonly pushedMalformed = { metrics: 0, samples: 0, events: 0, system: 0, evals: 0 };
  private readonly runJsonRead = new CoalescedTask(() => this.readRunJson());
  private readonly checkpointScan = new CoalescedTask(() => this.scanCheckpoints());
  private readonly aliveCheck = new CoalescedTask(() => this.checkAlive());
  private info: ObservedRun | undefined;
  private runJsonText = '';
  /** What is wrong with run.json, shown on this run (a bad field, or why it is not read at all). */
  private runJsonProblems: readonly string[] = [];
  private checkpoints: CheckpointSummary[] = [];
  /** A followed run's checkpoint list as its source sent it, before best_by ranks it. */
  private pushedCheckpoints: CheckpointSummary[] = [];
  private readonly checkpointChecks: CheckpointScanCache = new Map();
  private alive: boolean | undefined;
  private job: SlurmJob | undefined;
  private dirWatcher: FSWatcher | undefined;
  private checkpointsWatcher: FSWatcher | undefined;
  private timers: NodeJS.Timeout[] = [];
  private disposed = false;

  constructor(
    readonly key: RunKey,
    private readonly target: RunTarget,
    readonly dir: string,
    private readonly options: TrackerOptions,
    private readonly report: (delta: TrackerReport) => void,
    /** Set for a run read elsewhere and pushed here; then nothing is read from this machine's disk. */
    private readonly source?: RunSource,
  ) {
    this.tails = source ? undefined : this.makeTails();
    this.data = {
      summary: this.buildSummary(),
      tables: this.tables,
      samples: this.samples,
      events: this.events,
      evals: this.evals,
    };
  }

  private makeTails(): NonNullable<RunTracker['tails']> {
    // The tracker's folder watch wakes the tailers; their own polls stay as the fallback.
    const tailOptions = { pollMs: this.options.pollMs, watch: false };
    const tails = {
      metrics: new JsonlTailer(join(this.dir, 'metrics.jsonl'), isMetricRecord, tailOptions),
      samples: new JsonlTailer(join(this.dir, 'samples.jsonl'), isSampleRecord, tailOptions),
      events: new JsonlTailer(join(this.dir, 'events.jsonl'), isEventRecord, tailOptions),
      system: new JsonlTailer(join(this.dir, SYSTEM_FILE), isSystemRecord, tailOptions),
      evals: new JsonlTailer(join(this.dir, EVALS_FILE), isEvalRecord, tailOptions),
    };
    tails.metrics.onRecords((records, batch) => this.onMetrics(records, batch.reset));
    tails.samples.onRecords((records, batch) => this.onSamples(records, batch.reset));
    tails.events.onRecords((records, batch) => this.onEvents(records, batch.reset));
    tails.system.onRecords((records, batch) => this.onSystem(records, batch.reset));
    tails.evals.onRecords((records, batch) => this.onEvals(records, batch.reset));
    for (const tail of Object.values(tails)) tail.onMalformed(() => this.updateSummary());
    return tails;
  }

  private get tailList(): { readNow(): Promise<void>; whenIdle(): Promise<void>; start(): void; dispose(): void }[] {
    return this.tails ? Object.values(this.tails) : [];
  }

  start(): void {
    if (this.source) return this.startPushed(this.source);
    if (this.options.watch) this.watchDir();
    for (const tail of this.tailList) tail.start();
    void this.runJsonRead.run();
    void this.checkpointScan.run();
    this.every(this.options.pollMs, () => {
      if (this.options.watch && !this.dirWatcher) this.watchDir();
      void this.runJsonRead.run();
      void this.checkpointScan.run();
    });
    this.startAliveChecks();
  }

  private every(ms: number, fn: () => void): void {
    if (ms <= 0) return;
    const timer = setInterval(fn, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private startAliveChecks(): void {
    this.every(this.options.aliveCheckMs, () => {
      if (this.info && isActiveStatus(this.info.status)) void this.aliveCheck.run();
    });
  }

  /** A pushed run: the source delivers records, run.json and checkpoints; the pid is still checked through the target. */
  private startPushed(source: RunSource): void {
    const live = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
      if (!this.disposed) fn(...args);
    };
    source.start({
      batch: live((b: PushedBatch) => {
        if (b.file === 'metrics') this.onMetrics(b.records, b.reset, b.cut);
        else if (b.file === 'samples') this.onSamples(b.records, b.reset, b.cutFrom);
        else if (b.file === 'system') this.onSystem(b.records, b.reset);
        else if (b.file === 'evals') this.onEvals(b.records, b.reset);
        else this.onEvents(b.records, b.reset);
      }),
      malformed: live((file: LogFile, total: number) => {
        this.pushedMalformed[file] = total;
        this.updateSummary();
      }),
      runInfo: live((observed: Observed) => void this.applyRunJson(observed, JSON.stringify(observed))),
      checkpoints: live((list: CheckpointSummary[]) => this.applyCheckpoints((this.pushedCheckpoints = list))),
    });
    this.startAliveChecks();
  }

  /** Re-reads every file now. */
  async refresh(): Promise<void> {
    if (this.source) await this.source.whenIdle?.();
    else await Promise.all([...this.tailList.map((t) => t.readNow()), this.runJsonRead.run(), this.checkpointScan.run()]);
    await this.aliveCheck.run();
  }

  /** Resolves once no read, scan or pid check is in flight. */
  async whenIdle(): Promise<void> {
    const tasks = [this.runJsonRead, this.checkpointScan, this.aliveCheck];
    await this.source?.whenIdle?.();
    // A read can start another (run.json → pid check), so settle until nothing is busy.
    for (;;) {
      await Promise.all([...this.tailList.map((t) => t.whenIdle()), ...tasks.map((t) => t.whenIdle())]);
      if (!tasks.some((t) => t.busy)) return;
    }
  }

  dispose(): void {
    this.disposed = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.dirWatcher?.close();
    this.checkpointsWatcher?.close();
    for (const task of [this.runJsonRead, this.checkpointScan, this.aliveCheck]) task.stop();
    for (const tail of this.tailList) tail.dispose();
    this.source?.dispose();
  }

  private watchDir(): void {
    const wake: Record<string, () => void> = {
      'metrics.jsonl': () => void this.tails?.metrics.readNow(),
      'samples.jsonl': () => void this.tails?.samples.readNow(),
      'events.jsonl': () => void this.tails?.events.readNow(),
      [SYSTEM_FILE]: () => void this.tails?.system.readNow(),
      [EVALS_FILE]: () => void this.tails?.evals.readNow(),
      'run.json': () => void this.runJsonRead.run(),
      checkpoints: () => void this.checkpointScan.run(),
    };
    this.dirWatcher = this.watchFolder(this.dir, (name) => {
      if (name === undefined) for (const fn of Object.values(wake)) fn();
      else wake[name]?.();
    }, () => (this.dirWatcher = undefined));
  }

  /** fs.watch that never throws: a missing folder or exhausted watches leave the poll in charge. */
  private watchFolder(path: string, onName: (name: string | undefined) => void, onClosed: () => void): FSWatcher | undefined {
    try {
      const watcher = watch(path, { persistent: false }, (_event, filename) => onName(filename ? basename(filename.toString()) : undefined));
      watcher.on('error', () => {
        watcher.close();
        onClosed();
      });
      return watcher;
    } catch {
      return undefined;
    }
  }

  private onMetrics(records: MetricRecord[], reset: boolean, cut: Record<string, number> = {}): void {
    const from = new Map<string, number>();
    if (reset) {
      for (const table of this.tables.values()) {
        if (table.kind === SYSTEM_KIND) continue; // system.jsonl's own table
        table.length = 0;
        from.set(table.kind, 0);
      }
    }
    for (const [kind, step] of Object.entries(cut)) {
      const table = kind === SYSTEM_KIND ? undefined : this.tables.get(kind);
      if (table) from.set(kind, cutTable(table, step));
    }
    for (const record of records) {
      const kind = kindOf(record);
      let table = this.tables.get(kind);
      if (!table) this.tables.set(kind, (table = newSeriesTable(kind)));
      const row = appendRecord(table, record);
      from.set(kind, Math.min(from.get(kind) ?? row, row));
    }
    for (const [kind, row] of from) this.report({ table: { kind, from: row } });
    this.updateSummary();
  }

  /** system.jsonl's records, in their own table (kind "system"), appended by time. */
  private onSystem(records: SystemRecord[], reset: boolean): void {
    let table = this.tables.get(SYSTEM_KIND);
    if (!table && records.length === 0) return;
    if (!table) this.tables.set(SYSTEM_KIND, (table = newSeriesTable(SYSTEM_KIND)));
    if (reset) table.length = 0;
    const from = table.length;
    for (const record of records) appendSystemRecord(table, record);
    this.report({ table: { kind: SYSTEM_KIND, from } });
    if (reset) this.updateSummary();
  }

  private onLog<R>(log: R[], records: R[], reset: boolean, field: 'samplesFrom' | 'eventsFrom' | 'evalsFrom'): void {
    if (reset) log.length = 0;
    else if (records.length === 0) return;
    const from = log.length;
    for (const record of records) log.push(record);
    this.report({ [field]: from });
    if (reset) this.updateSummary(); // the file's malformed count started over
  }

  /**
   * evals.jsonl's records. Under a task-metric best_by they rank the checkpoints: a local run's are
   * scanned again (scanCheckpoints reads the file), a followed run's ranked here from what arrived.
   */
  private onEvals(records: EvalRecord[], reset: boolean): void {
    this.onLog(this.evals, records, reset, 'evalsFrom');
    if (records.length === 0 && !reset) return;
    if (this.source) this.applyCheckpoints(this.pushedCheckpoints);
    else void this.checkpointScan.run();
  }

  private onSamples(records: SampleRecord[], reset: boolean, cutFrom?: number): void {
    const kept = cutFrom === undefined ? -1 : this.samples.findIndex((s) => s.step >= cutFrom);
    if (kept >= 0 && cutFrom !== undefined) {
      const rest = this.samples.slice(kept).filter((s) => s.step < cutFrom);
      this.samples.length = kept;
      this.samples.push(...rest);
      this.report({ samplesFrom: kept });
    }
    this.onLog(this.samples, records, reset, 'samplesFrom');
    this.dropSupersededSamples();
  }

  /**
   * A resumed trainer goes back to its checkpoint's step and samples the later steps again: the
   * samples of steps after a resume's step that were written before it (the first attempt's) are
   * dropped, as metrics rows are (seriesTable.ts). Events stay: they are the run's history.
   */
  private dropSupersededSamples(): void {
    const resumes = this.events.filter((e) => e.kind === 'resume');
    if (resumes.length === 0) return;
    const superseded = (s: SampleRecord): boolean => resumes.some((r) => s.step > r.step && s.t < r.t);
    const first = this.samples.findIndex(superseded);
    if (first < 0) return;
    const kept = this.samples.slice(first).filter((s) => !superseded(s));
    this.samples.splice(first, this.samples.length - first, ...kept);
    this.report({ samplesFrom: first });
  }

  private onEvents(records: EventRecord[], reset: boolean): void {
    this.onLog(this.events, records, reset, 'eventsFrom');
    if (records.some((e) => e.kind === 'resume')) this.dropSupersededSamples();
    // Our trainer writes the checkpoint event after DONE: the cheapest exact moment to rescan.
    if (!this.source && records.some((e) => e.kind === 'checkpoint')) void this.checkpointScan.run();
  }

  private async readRunJson(): Promise<void> {
    let text: string;
    try {
      text = (await readRegularFile(join(this.dir, 'run.json'))).toString('utf8');
    } catch {
      return; // a foreign run, or one not started yet
    }
    if (text === this.runJsonText || this.disposed) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return; // half-written (a writer that does not rename atomically): wait for the next change
    }
    await this.applyRunJson(observeRunInfo(value), text);
  }

  /** A run.json that is not a run keeps what was read before (if anything) and says why. */
  private async applyRunJson(observed: Observed, text: string): Promise<void> {
    if (text === this.runJsonText) return;
    this.runJsonText = text;
    const problems = observed.ok ? observed.problems : [observed.error];
    if (problems.join('\n') !== this.runJsonProblems.join('\n')) this.runJsonProblems = problems;
    if (!observed.ok) return this.updateSummary();
    const value = observed.run;
    const pidChanged = this.info?.pid !== value.pid;
    this.info = value;
    if (pidChanged) this.alive = undefined;
    if (this.source) this.applyCheckpoints(this.pushedCheckpoints); // its config says what best is by
    this.updateSummary();
    if (isActiveStatus(value.status)) await this.aliveCheck.run();
  }

  private async checkAlive(): Promise<void> {
    const info = this.info;
    if (!info || !isActiveStatus(info.status)) return;
    const alive = await this.target.isAlive(info);
    if (this.disposed || this.info?.pid !== info.pid) return;
    this.alive = alive;
    this.updateSummary();
  }

  private async scanCheckpoints(): Promise<void> {
    const found = await scanCheckpoints(this.dir, this.checkpointChecks);
    if (this.disposed) return;
    if (this.options.watch && !this.checkpointsWatcher) {
      // Sees step folders appear and go (pruning); DONE inside one is caught by the checkpoint event or the poll.
      const root = join(this.dir, 'checkpoints');
      this.checkpointsWatcher = this.watchFolder(root, () => void this.checkpointScan.run(), () => (this.checkpointsWatcher = undefined));
    }
    this.applyCheckpoints(found);
  }

  private applyCheckpoints(found: CheckpointSummary[]): void {
    // A followed run's list comes marked by eval loss (toCheckpointSummaries): best_by ranks it here.
    if (this.source) found = markBest(scoreByEvals(found.map((c) => ({ ...c })), this.evals, this.info?.config));
    if (sameCheckpoints(found, this.checkpoints)) return;
    this.checkpoints = found;
    this.updateSummary();
  }

  private buildSummary(): RunSummary {
    const train = this.tables.get('train');
    // The train record of step s is written before the state s+1 exists; run.json's step (set at
    // each checkpoint) names the state a finished or stopped run ended in. The later of the two.
    const trained = train && train.length > 0 ? train.step[train.length - 1] : undefined;
    const lastStep = trained === undefined ? this.info?.step : Math.max(trained, this.info?.step ?? trained);
    return {
      key: this.key,
      hostId: this.target.id,
      hostLabel: this.target.label,
      dir: this.dir,
      // A queued Slurm job's folder (no run.json yet) is named as the user named it, less the stamp.
      name: this.info?.name ?? (this.job ? nameOfFolder(basename(this.dir)) : basename(this.dir)),
      status: displayStatus(this.info, this.alive, this.job),
      info: this.info,
      config: this.info?.config,
      problems: this.runJsonProblems,
      lastStep,
      lastLoss: lastLossOf(train),
      lastTokPerS: lastValue(train, 'tok_per_s'),
      checkpoints: this.checkpoints,
      job: this.job,
      malformed: this.tails
        ? {
            metrics: this.tails.metrics.malformed,
            samples: this.tails.samples.malformed,
            events: this.tails.events.malformed,
            system: this.tails.system.malformed,
            evals: this.tails.evals.malformed,
          }
        : { ...this.pushedMalformed },
    };
  }

  /** The run's Slurm job as last polled (SlurmJobWatch); its state decides a queued or ended run's status. */
  setJob(job: SlurmJob | undefined): void {
    if (JSON.stringify(job) === JSON.stringify(this.job)) return;
    this.job = job;
    this.updateSummary();
  }

  private updateSummary(): void {
    if (this.disposed) return;
    const next = this.buildSummary();
    if (sameSummary(this.data.summary, next)) return;
    this.data.summary = next;
    this.report({ summary: true });
  }
}

function sameSummary(a: RunSummary, b: RunSummary): boolean {
  return (
    a.status === b.status &&
    a.name === b.name &&
    a.info === b.info &&
    a.problems === b.problems &&
    a.checkpoints === b.checkpoints &&
    a.job === b.job &&
    Object.is(a.lastStep, b.lastStep) &&
    Object.is(a.lastLoss, b.lastLoss) &&
    Object.is(a.lastTokPerS, b.lastTokPerS) &&
    a.malformed.metrics === b.malformed.metrics &&
    a.malformed.samples === b.malformed.samples &&
    a.malformed.events === b.malformed.events &&
    a.malformed.system === b.malformed.system &&
    a.malformed.evals === b.malformed.evals
  );
}

/** The last value of the run's training loss, however its logger names it (see primaryLossField). */
function lastLossOf(train: SeriesTable | undefined): number | undefined {
  const field = train && primaryLossField(train.fields.keys());
  return field === undefined ? undefined : lastValue(train, field);
}
