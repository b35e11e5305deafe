// A local run folder in a foreign format (TensorBoard event files, a CSV metrics log, Hugging Face
// trainer state) fed to its tracker as a pushed source: its reader (src/shared/node/formats/) runs
// on an fs.watch of the folder and a slow poll, one pass at a time, and what it reads is delivered
// as the JSONL tailers' batches would be. A file that cannot be read further is shown on the run.
import { watch, type FSWatcher } from 'node:fs';
import type { FormatBatch, RunFormatReader } from '../../shared/node/formats/batch';
import { CoalescedTask } from './coalesce';
import type { RunSink, RunSource } from './runTracker';

export class LocalFormatSource implements RunSource {
  private sink: RunSink | undefined;
  private readonly reads = new CoalescedTask(() => this.readOnce());
  private malformed = 0;
  private readonly problems: string[] = [];
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    private readonly reader: RunFormatReader,
    private readonly options: { pollMs: number; watch: boolean },
  ) {}

  start(sink: RunSink): void {
    this.sink = sink;
    if (this.options.watch) this.watchDir();
    if (this.options.pollMs > 0) {
      this.timer = setInterval(() => {
        if (this.options.watch && !this.watcher) this.watchDir();
        void this.reads.run();
      }, this.options.pollMs);
      this.timer.unref();
    }
    void this.reads.run();
  }

  whenIdle(): Promise<void> {
    return this.reads.run().then(() => this.reads.whenIdle());
  }

  dispose(): void {
    this.reads.stop();
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    this.sink = undefined;
  }

  private watchDir(): void {
    try {
      // recursive: Hugging Face writes trainer_state.json into new checkpoint-N/ folders.
      this.watcher = watch(this.dir, { persistent: false, recursive: true }, () => void this.reads.run());
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = undefined;
      });
    } catch {
      this.watcher = undefined; // the poll carries on alone
    }
  }

  private async readOnce(): Promise<void> {
    const batch = await this.reader.read();
    const sink = this.sink;
    if (!sink) return;
    if (batch.reset) this.malformed = 0;
    deliverFormatBatch(sink, batch);
    if (batch.malformed > 0 || batch.reset) sink.malformed('metrics', (this.malformed += batch.malformed));
    if (batch.problem) {
      this.problems.push(batch.problem);
      sink.runInfo({ ok: false, error: this.problems.join(' ') });
    }
  }
}

/**
 * One reader pass's records to the run, as the JSONL tailers' batches would arrive (here and from
 * `steelscope follow` over SSH): a reset drops what the run had; a cut drops one file's rows only.
 */
export function deliverFormatBatch(
  sink: RunSink,
  batch: Pick<FormatBatch, 'reset' | 'metrics' | 'samples' | 'cut'>,
): void {
  const { reset, cut } = batch;
  if (batch.metrics.length > 0 || reset || cut)
    sink.batch({ file: 'metrics', records: batch.metrics, reset, cut: cut?.tables });
  if (batch.samples.length > 0 || reset || cut?.samples !== undefined)
    sink.batch({ file: 'samples', records: batch.samples, reset, cutFrom: cut?.samples });
}
