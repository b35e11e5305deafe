// One run of an async task at a time; requests that arrive while it runs coalesce into a single
// rerun after it. Every read of a file or folder in the run layer goes through one of these, so a
// burst of fs.watch events costs at most two reads, never a pile of overlapping ones.

export class CoalescedTask {
  private inFlight: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** The last error the task threw (a permissions problem, a folder where a file should be). */
  lastError: unknown;

  constructor(private readonly task: () => Promise<void>) {}

  /** Runs the task, or asks the running one to run once more; resolves when that run is done. Never rejects. */
  run(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.inFlight) {
      this.again = true;
      return this.inFlight;
    }
    this.inFlight = this.drain().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  async whenIdle(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }

  stop(): void {
    this.stopped = true;
  }

  private async drain(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.task();
        this.lastError = undefined;
      } catch (err) {
        this.lastError = err;
      }
    } while (this.again && !this.stopped);
  }
}
