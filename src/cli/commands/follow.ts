// `steelscope follow <run-dir> [--from <offsets-json>]`: runs next to a run (on an SSH host, over
// an exec channel) and streams what is appended to its files as JSON lines on stdout
// (src/shared/follow-protocol.ts), until stdin ends, a signal arrives or the channel closes.
//
// - The JSONL files are read by the shared incremental reader (src/shared/node/reader.ts), which
//   owns the rules: partial last line, truncation/replacement/deletion (sent as a reset), the
//   record cap, regular files only. This command turns its frames into protocol messages.
// - Every chunk's messages are written at once and the next chunk waits for stdout's 'drain', so a
//   slow channel slows the reading instead of filling memory; a stop request is checked per chunk.
// - fs.watch on the run folder and its checkpoints folder wakes a scan at once; a short stat poll
//   is the fallback (watches fail on some file systems and never see DONE inside a step folder).
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  encodeRecordMessage, FOLLOW_PROTOCOL, FOLLOWED_FILES, parseFollowOffsets, RECORD_VALIDATORS,
  type CheckpointEntry, type FollowedFile, type FollowLine, type FollowOffsets, emptyOffsets,
} from '../../shared/follow-protocol';
import { decodeJsonLine, jsonlFramer } from '../../shared/jsonl';
import { scanCheckpoints, type CheckpointScanCache } from '../../shared/node/checkpoints';
import { currentSignature, IncrementalReader, readRegularFile, type Frame } from '../../shared/node/reader';
import { numberFlag, parseArgs, stringFlag, UsageError } from '../args';

export const FOLLOW_USAGE = `steelscope follow <run-dir> [--from '{"metrics.jsonl":N,"samples.jsonl":N,"events.jsonl":N}'] [--poll-ms N (default 500)] [--heartbeat-ms N (default 5000)]`;

interface Setup {
  dir: string;
  from: FollowOffsets;
  pollMs: number;
  heartbeatMs: number;
}

async function setup(argv: readonly string[]): Promise<Setup> {
  const p = parseArgs(argv, { from: { kind: 'string' }, 'poll-ms': { kind: 'int' }, 'heartbeat-ms': { kind: 'int' } }, 'follow');
  if (p.positional.length !== 1) throw new UsageError(`Usage: ${FOLLOW_USAGE}`);
  const dir = resolve(p.positional[0]);
  const fromText = stringFlag(p, 'from');
  const parsed = fromText === undefined ? { ok: true as const, offsets: emptyOffsets() } : parseFollowOffsets(fromText);
  if (!parsed.ok) throw new UsageError(parsed.message);
  const pollMs = numberFlag(p, 'poll-ms') ?? 500;
  const heartbeatMs = numberFlag(p, 'heartbeat-ms') ?? 5000;
  if (pollMs < 10) throw new UsageError('--poll-ms must be at least 10.');
  if (heartbeatMs < 50) throw new UsageError('--heartbeat-ms must be at least 50.');
  let s: Stats;
  try {
    s = await stat(dir);
  } catch {
    throw new UsageError(`No run directory at ${dir}.`);
  }
  if (!s.isDirectory()) throw new UsageError(`${dir} is not a directory, so it holds no run.`);
  return { dir, from: parsed.offsets, pollMs, heartbeatMs };
}

/** Resolved once: by stdin's end, a signal, or stdout failing (the channel is gone). */
class StopSignal {
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
class LineOutput {
  private full = false;
  private onDrain: (() => void) | undefined;
  constructor(private readonly stream: NodeJS.WritableStream, private readonly stop: StopSignal) {
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
class Wake {
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

/** One JSONL file, read by the shared incremental reader from the --from offset; each line becomes a message. */
class FileFollower {
  private readonly reader: IncrementalReader;
  private readonly accept: (value: unknown) => value is object;

  constructor(
    readonly file: FollowedFile,
    path: string,
    offset: number,
  ) {
    this.reader = new IncrementalReader(path, jsonlFramer, { offset });
    this.accept = RECORD_VALIDATORS[file];
  }

  /** Just past the last line sent (or skipped, when blank); always in step with what stdout got. */
  get position(): number {
    return this.reader.offset;
  }

  async poll(out: LineOutput, stop: StopSignal): Promise<void> {
    for await (const event of this.reader.read()) {
      // The reader moves its offset and hands over the frames with no await between: the messages
      // are written before a heartbeat can report that offset.
      if (event.kind === 'reset') out.send({ reset: this.file });
      else out.write(event.frames.map((frame) => this.encode(frame)).join(''));
      await out.drained();
      if (stop.stopped) return; // checked per chunk read: a huge file never delays a stop
    }
  }

  /** A line's message with its newline; a blank line has none (the next message carries the offset past it). */
  private encode(frame: Frame): string {
    const malformed = JSON.stringify({ file: this.file, offset: frame.end, malformed: true }) + '\n';
    if (frame.kind === 'oversized') return malformed;
    const line = decodeJsonLine(frame.bytes, this.accept);
    if (line.kind === 'blank') return '';
    if (line.kind === 'malformed') return malformed;
    // The writer's own text travels; a bare '\r' inside it (legal JSON whitespace) would end the
    // line for readers that split on it, so such a line is re-serialized instead.
    const json = line.json.includes('\r') ? JSON.stringify(line.value) : line.json;
    return encodeRecordMessage(this.file, frame.end, json) + '\n';
  }
}

/** run.json: sent whole when its content changes; a line that does not parse waits for the next change. */
class RunJsonFollower {
  private signature = '';
  private lastText = '';
  constructor(private readonly path: string) {}

  async poll(out: LineOutput): Promise<void> {
    const signature = await currentSignature(this.path);
    if (signature === this.signature || signature === 'missing') {
      this.signature = signature;
      return;
    }
    const text = (await readRegularFile(this.path)).toString('utf8'); // a failure is retried on the next pass
    this.signature = signature;
    if (text === this.lastText) return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return; // a foreign writer caught mid-write: its next write changes the signature
    }
    // Any object goes: the client checks it (observeRunInfo) and shows what is wrong on the run.
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
    this.lastText = text;
    out.send({ run: value });
  }
}

/** The checkpoint list, sent when it differs from the last one sent. Manifests are read once per DONE. */
class CheckpointFollower {
  private last: string | undefined;
  private readonly checks: CheckpointScanCache = new Map();
  constructor(readonly root: string) {}

  async poll(out: LineOutput): Promise<void> {
    const checkpoints = await this.scan();
    const text = JSON.stringify({ checkpoints });
    if (text === this.last) return;
    this.last = text;
    out.write(text + '\n');
  }

  private async scan(): Promise<CheckpointEntry[]> {
    const found = await scanCheckpoints(dirname(this.root), this.checks);
    return found.map((c) => ({ step: c.step, dir: c.dir, complete: c.complete, eval_loss: c.evalLoss, ...(c.problem ? { problem: c.problem } : {}) }));
  }
}

/** Watches the run folder and (once it exists) its checkpoints folder; failures leave the poll alone. */
class Watches {
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
function listenForStop(stop: StopSignal, stopRequested: () => boolean): () => void {
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

interface Scanner {
  dir: string;
  runJson: RunJsonFollower;
  checkpoints: CheckpointFollower;
  files: FileFollower[];
  watches: Watches;
}

/** One pass over everything; a failure of one part (permissions, say) is reported and retried next pass. */
async function scan(s: Scanner, out: LineOutput, stop: StopSignal, warn: (err: unknown) => void): Promise<void> {
  s.watches.ensure(s.dir); // again each pass: a watch that failed (or a folder that appeared) is retried
  s.watches.ensure(s.checkpoints.root);
  await s.runJson.poll(out).catch(warn);
  await s.checkpoints.poll(out).catch(warn);
  for (const file of s.files) {
    if (stop.stopped) return;
    await file.poll(out, stop).catch(warn);
  }
  await out.drained();
}

function onceEach(): (err: unknown) => void {
  const seen = new Set<string>();
  return (err) => {
    const message = err instanceof Error ? err.message : String(err);
    if (seen.has(message)) return;
    seen.add(message);
    process.stderr.write(`steelscope follow: ${message}\n`);
  };
}

export async function followCommand(argv: readonly string[], stopRequested: () => boolean): Promise<number> {
  let config: Setup;
  try {
    config = await setup(argv);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stdout.write(JSON.stringify({ error: { message } } satisfies FollowLine) + '\n');
    process.stderr.write(`steelscope: ${message}\n`);
    return 2;
  }
  const { dir, from, pollMs, heartbeatMs } = config;
  const stop = new StopSignal();
  const out = new LineOutput(process.stdout, stop);
  const wake = new Wake();
  const scanner: Scanner = {
    dir,
    runJson: new RunJsonFollower(join(dir, 'run.json')),
    checkpoints: new CheckpointFollower(join(dir, 'checkpoints')),
    files: FOLLOWED_FILES.map((f) => new FileFollower(f, join(dir, f), from[f])),
    watches: new Watches(wake),
  };
  out.send({ ready: true, protocol: FOLLOW_PROTOCOL, dir, from });
  const unlisten = listenForStop(stop, stopRequested);
  const offsets = (): FollowOffsets => {
    const now = emptyOffsets();
    for (const f of scanner.files) now[f.file] = f.position;
    return now;
  };
  const heartbeat = setInterval(() => out.send({ heartbeat: true, t: Date.now(), offsets: offsets() }), heartbeatMs);
  const warn = onceEach();
  try {
    while (!stop.stopped) {
      await scan(scanner, out, stop, warn);
      await wake.wait(pollMs, stop.promise);
    }
  } finally {
    clearInterval(heartbeat);
    scanner.watches.close();
    unlisten();
  }
  return 0;
}
