// The protocol of `steelscope follow <run-dir> [--from <offsets-json>]`: what a remote run sends
// over an SSH exec channel so the extension sees the run as if it read the files itself. One JSON
// object per line on stdout; stdin carries nothing but its end (EOF stops the follower). Declared
// once here for both ends, with a runtime validator, because a line on a channel is only text
// until it is checked.
//
// Messages (stdout):
//   {"ready":true,"protocol":"steelscope.follow/1","dir":"/abs/run","from":{"metrics.jsonl":0,…}}
//                 once, first: the run folder as the host resolved it and the offsets it starts at
//   {"run":{…}}   the parsed run.json (a RunInfo): once at start if it exists, then whenever its
//                 content changes (it is rewritten by atomic rename)
//   {"checkpoints":[{"step":10,"dir":"/abs/run/checkpoints/step-00000010","complete":true,"eval_loss":2.1|null}]}
//                 every step-NNNNNNNN folder by ascending step: once at start, then on any change
//   {"file":"metrics.jsonl","offset":1234,"record":{…}}
//                 one complete line of metrics.jsonl, samples.jsonl or events.jsonl, in file order;
//                 offset is the byte offset just past the line's newline
//   {"file":"metrics.jsonl","offset":1234,"malformed":true}
//                 a line that is not a JSON object of the file's shape: skipped like every reader
//                 skips it, but announced so the offset still advances and the count is known
//   {"reset":"metrics.jsonl"}
//                 the file was truncated, replaced or deleted (or the --from offset no longer fits
//                 it): drop what came from it; its records start again from offset 0
//   {"heartbeat":true,"t":1700000000000,"offsets":{"metrics.jsonl":1234,…}}
//                 every few seconds (host clock, Unix ms), so a silent dead connection is noticed;
//                 offsets are where the follower stands, every line before them already sent
//   {"error":{"message":"…"}}
//                 the only line of a follower that could not start (exit code 2)
//
// Blank lines are skipped without a message; the next record, malformed line or heartbeat moves
// the client's offset past them (stdout is one ordered stream, so a heartbeat's offsets never
// run ahead of the messages before it). Comparing them with a file's size tells "caught up".
//
// Resuming: the client keeps the last offset per file (applyFollowMessage) and, after a dropped
// connection, runs `follow --from '<encodeFollowOffsets(offsets)>'`; records after those offsets
// arrive, none repeated and none lost. Stops: stdin EOF, SIGTERM/SIGINT, or the channel closing
// (exit code 0).
import { isEventRecord, isMetricRecord, isRunInfo, isSampleRecord, type EventRecord, type MetricRecord, type RunInfo, type SampleRecord } from './run';

export const FOLLOW_PROTOCOL = 'steelscope.follow/1';

export const FOLLOWED_FILES = ['metrics.jsonl', 'samples.jsonl', 'events.jsonl'] as const;
export type FollowedFile = (typeof FOLLOWED_FILES)[number];

/** Byte offset just past the last line the client has, per file; a missing file means 0. */
export type FollowOffsets = Record<FollowedFile, number>;

export interface FollowReadyMessage {
  ready: true;
  protocol: typeof FOLLOW_PROTOCOL;
  dir: string;
  from: FollowOffsets;
}

export interface RunMessage {
  run: RunInfo;
}

export interface CheckpointEntry {
  step: number;
  /** Absolute path on the host that runs the follower. */
  dir: string;
  /** DONE exists (hashes are checked only when a checkpoint is loaded). */
  complete: boolean;
  /** manifest.json's eval_loss of a complete checkpoint; null when absent or not finite. */
  eval_loss: number | null;
}

export interface CheckpointsMessage {
  checkpoints: CheckpointEntry[];
}

interface RecordTypes {
  'metrics.jsonl': MetricRecord;
  'samples.jsonl': SampleRecord;
  'events.jsonl': EventRecord;
}

export type RecordMessage = { [F in FollowedFile]: { file: F; offset: number; record: RecordTypes[F] } }[FollowedFile];

export interface MalformedMessage {
  file: FollowedFile;
  offset: number;
  malformed: true;
}

export interface ResetMessage {
  reset: FollowedFile;
}

export interface HeartbeatMessage {
  heartbeat: true;
  t: number;
  offsets: FollowOffsets;
}

export interface FollowErrorMessage {
  error: { message: string };
}

export type FollowMessage = FollowReadyMessage | RunMessage | CheckpointsMessage | RecordMessage | MalformedMessage | ResetMessage | HeartbeatMessage | FollowErrorMessage;

/** The record shape of each file: the same checks every local reader applies. */
export const RECORD_VALIDATORS: { [F in FollowedFile]: (value: unknown) => value is RecordTypes[F] } = {
  'metrics.jsonl': isMetricRecord,
  'samples.jsonl': isSampleRecord,
  'events.jsonl': isEventRecord,
};

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isFollowedFile(value: unknown): value is FollowedFile {
  return typeof value === 'string' && (FOLLOWED_FILES as readonly string[]).includes(value);
}

function isOffset(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

export function emptyOffsets(): FollowOffsets {
  return { 'metrics.jsonl': 0, 'samples.jsonl': 0, 'events.jsonl': 0 };
}

/** The --from argument for a client's offsets. */
export function encodeFollowOffsets(offsets: FollowOffsets): string {
  return JSON.stringify(offsets);
}

/** Parses --from: a JSON object of known file names to non-negative integer offsets; others default to 0. */
export function parseFollowOffsets(text: string): { ok: true; offsets: FollowOffsets } | { ok: false; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `--from is not valid JSON (${(err as Error).message}): ${text}` };
  }
  const example = `e.g. --from '{"metrics.jsonl":1234,"samples.jsonl":0,"events.jsonl":56}'`;
  if (!isObject(value)) return { ok: false, message: `--from must be a JSON object of file names to byte offsets, ${example}.` };
  const offsets = emptyOffsets();
  for (const [key, offset] of Object.entries(value)) {
    if (!isFollowedFile(key)) return { ok: false, message: `--from names an unknown file "${key}"; the followed files are ${FOLLOWED_FILES.join(', ')}.` };
    if (!isOffset(offset)) return { ok: false, message: `--from: the offset of ${key} must be a non-negative integer, got ${JSON.stringify(offset)}.` };
    offsets[key] = offset;
  }
  return { ok: true, offsets };
}

/**
 * The text of a record message, built around the line's own text so the record reaches the client
 * exactly as the writer wrote it (1e400 stays 1e400, big integers keep their digits). `recordJson`
 * must already have been checked to be one JSON object of the file's shape, with no newline.
 */
export function encodeRecordMessage(file: FollowedFile, offset: number, recordJson: string): string {
  return `{"file":${JSON.stringify(file)},"offset":${offset},"record":${recordJson}}`;
}

function isCheckpointEntry(value: unknown): value is CheckpointEntry {
  if (!isObject(value)) return false;
  const loss = value.eval_loss;
  return Number.isSafeInteger(value.step) && typeof value.dir === 'string' && typeof value.complete === 'boolean' && (loss === null || typeof loss === 'number');
}

function asFileMessage(value: Json): RecordMessage | MalformedMessage | undefined {
  const file = value.file;
  if (!isFollowedFile(file) || !isOffset(value.offset)) return undefined;
  if (value.malformed === true) return value as unknown as MalformedMessage;
  return RECORD_VALIDATORS[file](value.record) ? (value as unknown as RecordMessage) : undefined;
}

function isOffsets(value: unknown): value is FollowOffsets {
  return isObject(value) && FOLLOWED_FILES.every((f) => isOffset(value[f]));
}

/** Checks a parsed stdout line of the follower; undefined when it is no message of this protocol. */
export function asFollowMessage(value: unknown): FollowMessage | undefined {
  if (!isObject(value)) return undefined;
  if ('file' in value) return asFileMessage(value);
  if (value.ready === true) {
    return value.protocol === FOLLOW_PROTOCOL && typeof value.dir === 'string' && isOffsets(value.from) ? (value as unknown as FollowReadyMessage) : undefined;
  }
  if ('run' in value) return isRunInfo(value.run) ? (value as unknown as RunMessage) : undefined;
  if ('checkpoints' in value) {
    return Array.isArray(value.checkpoints) && value.checkpoints.every(isCheckpointEntry) ? (value as unknown as CheckpointsMessage) : undefined;
  }
  if ('reset' in value) return isFollowedFile(value.reset) ? (value as unknown as ResetMessage) : undefined;
  if (value.heartbeat === true) return typeof value.t === 'number' && isOffsets(value.offsets) ? (value as unknown as HeartbeatMessage) : undefined;
  if (isObject(value.error)) return typeof value.error.message === 'string' ? (value as unknown as FollowErrorMessage) : undefined;
  return undefined;
}

/** parse + asFollowMessage for one stdout line. */
export function parseFollowMessage(line: string): FollowMessage | undefined {
  try {
    return asFollowMessage(JSON.parse(line));
  } catch {
    return undefined;
  }
}

/** The client's bookkeeping: the offsets to pass as --from after this message. */
export function applyFollowMessage(offsets: FollowOffsets, message: FollowMessage): FollowOffsets {
  if ('file' in message) return { ...offsets, [message.file]: message.offset };
  if ('reset' in message) return { ...offsets, [message.reset]: 0 };
  if ('heartbeat' in message) return { ...message.offsets };
  return offsets;
}
