// The follower's side of the channel: stdout with backpressure, the stop signal (stdin's end, a
// signal, a hang-up, stdout failing), and what wakes a scan (fs.watch, the poll timer).
import { watch, type FSWatcher } from 'node:fs';
import type { FollowLine } from '../../shared/follow-protocol';

/** Resolved once: by stdin's end, a signal, or stdout failing (the channel is gone). */
export class StopSignal {
  stopped = false;
  readonly promise: Promise<void>;
  private resolve: () => void = () => undefined;
  constructor() {
    this.promise = new Promise((r) => (this.resolve = r));
  }
  stop(): void {
    this.stopped = true;
    this.resolve();
  }
}

/** stdout with backpressure: writes whole lines, and `drained` waits while the channel is full. */
export class LineOutput {
  private full = false;
  private onDrain: (() => void) | undefined;
  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly stop: StopSignal,
  ) {
    stream.on('error', () => stop.stop()); // EPIPE and friends: nobody is reading any more
    stream.on('drain', () => {
      this.full = false;
      this.onDrain?.();
    });
  }
  /** `text` is zero or more complete lines, each ending in '\n'. */
  write(text: string): void {
    if (text === '' || this.stop.stopped) return;
    if (!this.stream.write(text)) this.full = true;
  }
  send(message: FollowLine): void {
    this.write(JSON.stringify(message) + '\n');
  }
  async drained(): Promise<void> {
    if (!this.full) return;
    await Promise.race([new Promise<void>((r) => (this.onDrain = r)), this.stop.promise]);
    this.onDrain = undefined;
  }
}

/** fs.watch events (and the poll timer) wake the scan loop; a burst of events is one wake. */
export class Wake {
  private pending = false;
  private wakeUp: (() => void) | undefined;
  notify(): void {
    this.pending = true;
    this.wakeUp?.();
  }
  async wait(ms: number, stop: Promise<void>): Promise<void> {
    if (!this.pending) {
      let timer: NodeJS.Timeout | undefined;
      const woken = new Promise<void>((r) => {
        this.wakeUp = r;
        timer = setTimeout(r, ms);
      });
      await Promise.race([woken, stop]);
      clearTimeout(timer);
      this.wakeUp = undefined;
    }
    this.pending = false;
  }
}

/** Watches the run folder and (once it exists) its checkpoints folder; failures leave the poll alone. */
export class Watches {
  private readonly watchers = new Map<string, FSWatcher>();
  constructor(private readonly wake: Wake) {}

  ensure(dir: string): void {
    if (this.watchers.has(dir)) return;
    try {
      const watcher = watch(dir, { persistent: false }, () => this.wake.notify());
      watcher.on('error', () => this.drop(dir)); // the folder vanished, or too many watches
      this.watchers.set(dir, watcher);
    } catch {
      // not there (yet): the next scan tries again, the poll covers the meantime
    }
  }

  private drop(dir: string): void {
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
  }

  close(): void {
    for (const dir of [...this.watchers.keys()]) this.drop(dir);
  }
}

/**
 * Ends on stdin's end, a first SIGTERM/SIGINT (main.ts turns signals into a flag), or SIGHUP: a
 * follower started under a pseudo-terminal gets that when the SSH session hangs up, and for a
 * follower a hang-up is the ordinary end, not a failure.
 */
export function listenForStop(stop: StopSignal, stopRequested: () => boolean): () => void {
  const timer = setInterval(() => stopRequested() && stop.stop(), 50);
  const onEnd = () => stop.stop();
  process.stdin.on('end', onEnd).on('close', onEnd).on('error', onEnd);
  process.stdin.resume(); // anything sent on stdin is ignored; only its end matters
  process.on('SIGHUP', onEnd);
  return () => {
    clearInterval(timer);
    process.removeListener('SIGHUP', onEnd);
    process.stdin.destroy();
  };
}

/** Writes each distinct failure once to stderr: a pass that fails the same way again says nothing new. */
export function onceEach(): (err: unknown) => void {
  const seen = new Set<string>();
  return (err) => {
    const message = err instanceof Error ? err.message : String(err);
    if (seen.has(message)) return;
    seen.add(message);
    process.stderr.write(`steelscope follow: ${message}\n`);
  };
}
