// Follows one run on an SSH host: `steelscope follow <dir> --from <offsets>` over an exec channel,
// each stdout line checked by the follow protocol's validator and pushed into the RunStore (it is
// a RunSource). The offsets of the records delivered are kept, so when the channel or the
// connection drops, a reconnect (with backoff: 0.5, 1, 2, 4 … 30 s) resumes exactly after the
// last delivered line: nothing lost, nothing repeated. No vscode here.
import { EventEmitter } from 'node:events';
import {
  applyFollowMessage,
  emptyOffsets,
  parseFollowMessage,
  type CheckpointEntry,
  type FollowedFile,
  type FollowMessage,
  type FollowOffsets,
  type FormatsMessage,
} from '../../shared/follow-protocol';
import { MAX_RECORD_BYTES, RecordAssembler } from '../../shared/framing';
import { jsonlFramer } from '../../shared/jsonl';
import type { LogFile, PushedBatch, RunSink, RunSource } from '../runs/runTracker';
import { deliverFormatBatch } from '../runs/formatSource';
import { rankingLoss } from '../../shared/checkpoint';
import { markBest, type CheckpointSummary } from '../../shared/node/checkpoints';
import { SshError, type RemoteProcess, type SshConnection } from './connection';

export type ConnectionState = 'connected' | 'connecting' | 'disconnected';

/** What the follower needs of its host: a live connection and the command line to run. */
export interface FollowHost {
  /** A connected SshConnection (reconnecting if the last one dropped). */
  connection(): Promise<SshConnection>;
  /** The quoted `node cli.js follow <dir> --from …` command for this host. */
  followCommand(dir: string, from: FollowOffsets): Promise<string>;
}

export interface RemoteFollowerOptions {
  /** First retry delay; doubles per failed try up to maxBackoffMs. Default 500 ms. */
  initialBackoffMs?: number;
  /** Default 30 s. */
  maxBackoffMs?: number;
  /** Nothing heard for this long (heartbeats come every 5 s) closes the channel and retries. Default 20 s. */
  silenceMs?: number;
}

/**
 * The longest protocol line accepted: a record at the cap, grown by the quoting of Python's
 * non-finite tokens (at most half again), inside its message. A longer line is no message of ours.
 */
const MAX_FOLLOW_LINE_BYTES = 2 * MAX_RECORD_BYTES + 4096;
const utf8 = new TextDecoder();

const SHORT: Record<FollowedFile, LogFile> = {
  'metrics.jsonl': 'metrics',
  'samples.jsonl': 'samples',
  'events.jsonl': 'events',
  'system.jsonl': 'system',
  'evals.jsonl': 'evals',
};

/** The protocol's checkpoint entries as the store's summaries, `best` marked by the format's rule. */
export function toCheckpointSummaries(entries: readonly CheckpointEntry[]): CheckpointSummary[] {
  return markBest(
    entries.map((c) => ({
      step: c.step,
      dir: c.dir,
      complete: c.complete,
      evalLoss: rankingLoss(c.eval_loss),
      ...(c.score !== undefined ? { score: c.score } : {}),
      best: false,
      ...(c.problem ? { problem: c.problem } : {}),
    })),
  );
}

/** Records of one stdout chunk, grouped per file in order, handed over at the chunk's end. */
class Pending {
  private readonly byFile = new Map<FollowedFile, unknown[]>();
  add(file: FollowedFile, record: unknown): void {
    const list = this.byFile.get(file);
    if (list) list.push(record);
    else this.byFile.set(file, [record]);
  }
  flush(sink: RunSink, only?: FollowedFile): void {
    for (const [file, records] of this.byFile) {
      if (only && file !== only) continue;
      this.byFile.delete(file);
      sink.batch({ file: SHORT[file], records, reset: false } as PushedBatch);
    }
  }
}

export class RemoteFollower extends EventEmitter implements RunSource {
  private offsetsNow: FollowOffsets = emptyOffsets();
  private readonly malformed: Record<FollowedFile, number> = {
    'metrics.jsonl': 0,
    'samples.jsonl': 0,
    'events.jsonl': 0,
    'system.jsonl': 0,
    'evals.jsonl': 0,
  };
  private stateNow: ConnectionState = 'disconnected';
  private sink: RunSink | undefined;
  private proc: RemoteProcess | undefined;
  private disposed = false;
  private wakeUp: (() => void) | undefined;
  /** Why the last attempt failed; cleared on a good connection. */
  lastError: string | undefined;
  /** Channels opened so far (the first connection, then one per reconnect). */
  attempts = 0;

  constructor(
    private readonly host: FollowHost,
    readonly dir: string,
    private readonly options: RemoteFollowerOptions = {},
  ) {
    super();
  }

  get state(): ConnectionState {
    return this.stateNow;
  }

  /** The byte offset just past the last line delivered, per file. */
  get offsets(): Readonly<FollowOffsets> {
    return this.offsetsNow;
  }

  onState(listener: (state: ConnectionState) => void): { dispose(): void } {
    this.on('state', listener);
    return { dispose: () => this.off('state', listener) };
  }

  start(sink: RunSink): void {
    this.sink = sink;
    void this.loop();
  }

  /** Retries now instead of waiting out the backoff (a "Reconnect" command, or the network is back). */
  reconnect(): void {
    this.wakeUp?.();
  }

  /** Drops the channel as a broken network would; the follower reconnects by itself (tests). */
  dropChannel(): void {
    this.proc?.close();
  }

  dispose(): void {
    this.disposed = true;
    this.proc?.stdin.end(); // EOF stops the remote follower cleanly
    this.proc?.close();
    this.wakeUp?.();
    this.setState('disconnected');
    this.emit('disposed');
    this.removeAllListeners();
  }

  async whenIdle(): Promise<void> {
    // Lines are delivered synchronously as they arrive: nothing is ever pending between calls.
  }

  private setState(state: ConnectionState): void {
    if (state === this.stateNow) return;
    this.stateNow = state;
    this.emit('state', state);
  }

  private async loop(): Promise<void> {
    const initial = this.options.initialBackoffMs ?? 500;
    const max = this.options.maxBackoffMs ?? 30_000;
    let delay = initial;
    while (!this.disposed) {
      this.setState('connecting');
      let delivered = false;
      try {
        delivered = await this.followOnce();
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        // A refused host key or a wrong password does not get better by retrying: wait for reconnect().
        if (err instanceof SshError && ['host-key-changed', 'host-key-rejected', 'auth'].includes(err.reason))
          delay = Infinity;
      }
      if (this.disposed) return;
      if (delivered) delay = initial;
      this.setState('disconnected');
      await this.sleep(delay);
      delay = Math.min(max, delay === Infinity ? initial : delay * 2);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === Infinity ? undefined : setTimeout(resolve, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => (this.wakeUp = undefined));
  }

  /** One channel, from open to close; true if it delivered the ready message. */
  private async followOnce(): Promise<boolean> {
    const connection = await this.host.connection();
    const command = await this.host.followCommand(this.dir, this.offsetsNow);
    if (this.disposed) return false;
    const proc = await connection.exec(command);
    this.attempts++;
    this.proc = proc;
    if (this.disposed) proc.close();
    let ready = false;
    let stderr = '';
    const lines = new RecordAssembler(jsonlFramer, MAX_FOLLOW_LINE_BYTES);
    const silenceMs = this.options.silenceMs ?? 20_000;
    const silence = () => setTimeout(() => proc.close(), silenceMs);
    let watchdog = silence();
    proc.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-4000)));
    proc.stdout.on('data', (chunk: Buffer) => {
      clearTimeout(watchdog);
      watchdog = silence();
      // Chunks wait in a list and are joined once a line can be complete; an overlong line is dropped.
      const complete = lines.push(chunk).flatMap((line) => (line.kind === 'record' ? [utf8.decode(line.bytes)] : []));
      if (complete.length > 0 && this.deliver(complete)) ready = true;
    });
    const { code } = await proc.exit;
    clearTimeout(watchdog);
    this.proc = undefined;
    if (ready && !this.disposed) this.lastError = undefined;
    if (code === 2 || (!ready && code !== null && code !== 0))
      throw new Error(
        this.lastError ??
          `steelscope follow exited with code ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
      );
    return ready;
  }

  /** Hands the lines' messages to the sink; true if one was the ready message. */
  private deliver(lines: string[]): boolean {
    const sink = this.sink;
    if (!sink || this.disposed) return false;
    const pending = new Pending();
    let ready = false;
    for (const line of lines) {
      if (!line.trim()) continue;
      const message = parseFollowMessage(line);
      if (!message) continue; // not of the protocol (a stray warning on stdout): nothing to keep
      if ('ready' in message) {
        ready = true;
        this.setState('connected');
      }
      this.apply(message, sink, pending);
      this.offsetsNow = applyFollowMessage(this.offsetsNow, message);
    }
    pending.flush(sink);
    return ready;
  }

  private apply(message: FollowMessage, sink: RunSink, pending: Pending): void {
    if ('file' in message) {
      if ('record' in message) return pending.add(message.file, message.record);
      pending.flush(sink, message.file);
      sink.malformed(SHORT[message.file], ++this.malformed[message.file]);
    } else if ('reset' in message) {
      pending.flush(sink, message.reset);
      this.malformed[message.reset] = 0;
      sink.batch({ file: SHORT[message.reset], records: [], reset: true });
      sink.malformed(SHORT[message.reset], 0);
    } else if ('run' in message) {
      sink.runInfo(message.run);
    } else if ('checkpoints' in message) {
      sink.checkpoints(toCheckpointSummaries(message.checkpoints));
    } else if ('error' in message) {
      this.lastError = `steelscope follow ${this.dir}: ${message.error.message}`;
    } else if ('formats' in message) {
      this.applyFormats(message, sink, pending);
    }
  }

  /** A pass of a foreign-format reader on the host: delivered as local format readers deliver it (src/host/runs/formatSource.ts). */
  private applyFormats({ formats: batch }: FormatsMessage, sink: RunSink, pending: Pending): void {
    pending.flush(sink);
    if (batch.reset) this.malformed['metrics.jsonl'] = 0;
    deliverFormatBatch(sink, batch);
    if (batch.malformed > 0 || batch.reset)
      sink.malformed('metrics', (this.malformed['metrics.jsonl'] += batch.malformed));
    if (batch.problem) sink.runInfo({ ok: false, error: batch.problem });
  }
}
