// What `steelscope follow` follows in a run folder, each turned into protocol messages
// (src/shared/follow-protocol.ts): the JSONL files through the shared incremental reader, run.json
// when its content changes, and the checkpoint list.
import { dirname } from 'node:path';
import {
  encodeRecordMessage,
  RECORD_VALIDATORS,
  type CheckpointEntry,
  type FollowedFile,
} from '../../shared/follow-protocol';
import { decodeJsonLine, jsonlFramer } from '../../shared/jsonl';
import { scanCheckpoints, type CheckpointScanCache } from '../../shared/node/checkpoints';
import { currentSignature, IncrementalReader, readRegularFile, type Frame } from '../../shared/node/reader';
import type { RunFormat, RunFormatReader, SourcePositions } from '../../shared/node/formats/batch';
import { openFormatReader } from '../../shared/node/formats/detect';
import type { LineOutput, StopSignal } from './channel';

/** One JSONL file, read by the shared incremental reader from the --from offset; each line becomes a message. */
export class FileFollower {
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
    // The writer's own text travels. A '\r' in valid JSON can only be whitespace between tokens
    // (inside a string it must be escaped), and it would end the line for readers that split on
    // it: it becomes a space, which keeps the record and its length (re-serializing could grow it).
    const json = line.json.replaceAll('\r', ' ');
    return encodeRecordMessage(this.file, frame.end, json) + '\n';
  }
}

/** run.json: sent whole when its content changes; a line that does not parse waits for the next change. */
export class RunJsonFollower {
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
export class CheckpointFollower {
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
    return found.map((c) => ({
      step: c.step,
      dir: c.dir,
      complete: c.complete,
      eval_loss: c.evalLoss,
      ...(c.score !== undefined ? { score: c.score } : {}),
      ...(c.problem ? { problem: c.problem } : {}),
    }));
  }
}

/**
 * A run folder in another format (TensorBoard event files, metrics.csv, trainer_state.json): one
 * pass of its reader (src/shared/node/formats/) per scan, sent as one message with where each
 * source file's reading stands, so a resumed follow (--from '{"sources":…}') goes on from there.
 */
export class FormatFollower {
  private readonly reader: RunFormatReader;

  constructor(dir: string, format: RunFormat, from: SourcePositions = {}) {
    this.reader = openFormatReader(dir, format, from);
  }

  positions(): SourcePositions {
    return this.reader.positions();
  }

  async poll(out: LineOutput): Promise<void> {
    const batch = await this.reader.read();
    if (
      !batch.reset &&
      !batch.cut &&
      batch.metrics.length === 0 &&
      batch.samples.length === 0 &&
      batch.malformed === 0 &&
      !batch.problem
    )
      return;
    // The positions are taken with no await after the read: they match what this message carries.
    out.send({ formats: batch, sources: this.reader.positions() });
  }
}
