// The protocol of `steelscope follow <run-dir> [--from <offsets-json>]`: what a remote run sends
// over an SSH exec channel so the extension sees the run as if it read the files itself. One JSON
// object per line on stdout; stdin carries nothing but its end (EOF stops the follower). Declared
// once here for both ends, with a runtime validator, because a line on a channel is only text
// until it is checked.
//
// Messages (stdout):
//   {"ready":true,"protocol":"steelscope.follow/1","dir":"/abs/run","from":{"metrics.jsonl":0,…}}
//                 once, first: the run folder as the host resolved it and the offsets it starts at
//   {"run":{…}}   run.json's object as read: once at start if it exists, then whenever its content
//                 changes (it is rewritten by atomic rename); the client checks it (observeRunInfo)
//   {"checkpoints":[{"step":10,"dir":"/abs/run/checkpoints/step-00000010","complete":true,"eval_loss":2.1|null}]}
//                 every step-NNNNNNNN folder by ascending step: once at start, then on any change
//   {"file":"metrics.jsonl","offset":1234,"record":{…}}
//                 one complete line of metrics.jsonl, samples.jsonl, events.jsonl, system.jsonl or evals.jsonl,
//                 in file order;
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
//   {"formats":{"reset":false,"metrics":[…],"samples":[…],"malformed":0,"problem":"…"},"sources":{…}}
//                 a run folder in another format (TensorBoard event files, metrics.csv, Hugging Face
//                 trainer_state.json; src/shared/node/formats/): what one pass of its reader read,
//                 as metric and sample records (an unknown time is null), and where each source file's
//                 reading stands ("sources": file → {at, sent, open}); --from '{"sources":…}' resumes
//                 there with nothing lost or repeated (a step still open is sent again, whole)
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
import * as v from 'valibot';
import {
  isEventRecord,
  isMetricRecord,
  isSampleRecord,
  observeRunInfo,
  type MetricRecord,
  type SampleRecord,
} from './run';
import { isSystemRecord } from './system';
import { EVALS_FILE, isEvalRecord } from './eval';
import { bool, int, nonNegativeInt, oneOf, parseJson, parseOrUndefined, str, type Output } from './schema';

export const FOLLOW_PROTOCOL = 'steelscope.follow/1';

export const FOLLOWED_FILES = ['metrics.jsonl', 'samples.jsonl', 'events.jsonl', 'system.jsonl', EVALS_FILE] as const;
export type FollowedFile = (typeof FOLLOWED_FILES)[number];
const FollowedFileSchema = oneOf(FOLLOWED_FILES);

/** Steps per table kind and of samples (src/shared/node/formats/batch.ts Cut). */
const CutSchema = v.object({ tables: v.record(str, v.number()), samples: v.optional(v.number()) });

/** Where a foreign-format source file's reading stands (src/shared/node/formats/batch.ts SourcePosition). */
const SourcePositionSchema = v.object({
  at: nonNegativeInt,
  sent: nonNegativeInt,
  open: v.optional(v.record(str, int)),
  rows: v.optional(v.object({ first: CutSchema, last: CutSchema })),
});
const SourcesSchema = v.record(str, SourcePositionSchema);

/**
 * Byte offset just past the last line the client has, per file; a missing file means 0. system.jsonl
 * and evals.jsonl (optional files) came later: a message without them reads as 0.
 */
const FollowOffsetsSchema = v.object({
  'metrics.jsonl': nonNegativeInt,
  'samples.jsonl': nonNegativeInt,
  'events.jsonl': nonNegativeInt,
  'system.jsonl': v.optional(nonNegativeInt, 0),
  [EVALS_FILE]: v.optional(nonNegativeInt, 0),
  /** A run folder in another format: where each of its source files stands. */
  sources: v.optional(SourcesSchema),
});
export type FollowOffsets = Output<typeof FollowOffsetsSchema>;

/** The record shape of each file: the same checks every local reader applies. */
export const RECORD_VALIDATORS = {
  'metrics.jsonl': isMetricRecord,
  'samples.jsonl': isSampleRecord,
  'events.jsonl': isEventRecord,
  'system.jsonl': isSystemRecord,
  [EVALS_FILE]: isEvalRecord,
};

type Guarded<G> = G extends (value: unknown) => value is infer T ? T : never;
type RecordOf<F extends FollowedFile> = Guarded<(typeof RECORD_VALIDATORS)[F]>;

const recordMessage = <F extends FollowedFile>(file: F) =>
  v.object({ file: v.literal(file), offset: nonNegativeInt, record: v.custom<RecordOf<F>>(RECORD_VALIDATORS[file]) });

const CheckpointEntrySchema = v.object({
  step: int,
  /** Absolute path on the host that runs the follower. */
  dir: str,
  /** Passed checkCheckpoint without hashes (src/shared/node/checkpoints.ts); hashes are checked on load. */
  complete: bool,
  /** manifest.json's eval_loss of a complete checkpoint; null when absent or not finite. */
  eval_loss: v.nullable(v.number()),
  /** Its rank when the config's best_by is a task metric (lower is better; src/shared/eval.ts evalScore). */
  score: v.optional(v.nullable(v.number())),
  /** Why a checkpoint with DONE is skipped (absent otherwise). */
  problem: v.optional(str),
});
export type CheckpointEntry = Output<typeof CheckpointEntrySchema>;

/** Every message, by the key that tells it apart (asFollowMessage picks the schema by it). */
const MESSAGES = {
  ready: v.object({
    ready: v.literal(true),
    protocol: v.literal(FOLLOW_PROTOCOL),
    dir: str,
    from: FollowOffsetsSchema,
  }),
  /** Sent as run.json's object; read as what observeRunInfo makes of it (a bad field is reported, not fatal). */
  run: v.object({ run: v.pipe(v.unknown(), v.transform(observeRunInfo)) }),
  checkpoints: v.object({ checkpoints: v.array(CheckpointEntrySchema) }),
  record: v.union([
    recordMessage('metrics.jsonl'),
    recordMessage('samples.jsonl'),
    recordMessage('events.jsonl'),
    recordMessage('system.jsonl'),
    recordMessage(EVALS_FILE),
  ]),
  malformed: v.object({ file: FollowedFileSchema, offset: nonNegativeInt, malformed: v.literal(true) }),
  reset: v.object({ reset: FollowedFileSchema }),
  heartbeat: v.object({ heartbeat: v.literal(true), t: v.number(), offsets: FollowOffsetsSchema }),
  error: v.object({ error: v.object({ message: str }) }),
  formats: v.object({
    formats: v.object({
      reset: bool,
      metrics: v.array(v.custom<MetricRecord>(isWireMetric)),
      samples: v.array(v.custom<SampleRecord>(isWireSample)),
      malformed: nonNegativeInt,
      problem: v.optional(str),
      /** Source files changed under others' rows (FormatBatch.cut): per kind, the step the rows to drop start at. */
      cut: v.optional(CutSchema),
    }),
    sources: SourcesSchema,
  }),
};
type MessageSchema = (typeof MESSAGES)[keyof typeof MESSAGES];

/** A message as the client holds it, checked. */
export type FollowMessage = Output<MessageSchema>;
/** A message as the follower writes it (run: run.json's object as read). */
export type FollowLine = v.InferInput<MessageSchema>;
export type FollowReadyMessage = Output<typeof MESSAGES.ready>;
export type RunMessage = Output<typeof MESSAGES.run>;
export type CheckpointsMessage = Output<typeof MESSAGES.checkpoints>;
export type RecordMessage = Output<typeof MESSAGES.record>;
export type MalformedMessage = Output<typeof MESSAGES.malformed>;
export type ResetMessage = Output<typeof MESSAGES.reset>;
export type HeartbeatMessage = Output<typeof MESSAGES.heartbeat>;
export type FollowErrorMessage = Output<typeof MESSAGES.error>;
export type FormatsMessage = Output<typeof MESSAGES.formats>;

type Json = Record<string, unknown>;

/**
 * A record of a foreign-format message as JSON carries it: an unknown time (NaN) arrives as null.
 * Checked, then null made NaN again in place (the record is the parsed message's own object).
 */
function isWireMetric(value: unknown): value is MetricRecord {
  if (!isObject(value) || !Number.isSafeInteger(value.step)) return false;
  if (value.t === null) value.t = NaN;
  return isMetricRecord(value);
}

function isWireSample(value: unknown): value is SampleRecord {
  if (!isObject(value) || !Number.isSafeInteger(value.step)) return false;
  for (const key of ['t', 'temperature', 'top_k', 'top_p', 'seed']) if (value[key] === null) value[key] = NaN;
  return isSampleRecord(value);
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isFollowedFile(value: unknown): value is FollowedFile {
  return v.is(FollowedFileSchema, value);
}

function isOffset(value: unknown): value is number {
  return v.is(nonNegativeInt, value);
}

export function emptyOffsets(): FollowOffsets {
  return { 'metrics.jsonl': 0, 'samples.jsonl': 0, 'events.jsonl': 0, 'system.jsonl': 0, [EVALS_FILE]: 0 };
}

/** The --from argument for a client's offsets. */
export function encodeFollowOffsets(offsets: FollowOffsets): string {
  return JSON.stringify(offsets);
}

/** Parses --from: a JSON object of known file names to non-negative integer offsets; others default to 0. */
export function parseFollowOffsets(
  text: string,
): { ok: true; offsets: FollowOffsets } | { ok: false; message: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, message: `--from is not valid JSON (${(err as Error).message}): ${text}` };
  }
  const example = `e.g. --from '{"metrics.jsonl":1234,"samples.jsonl":0,"events.jsonl":56}'`;
  if (!isObject(value))
    return { ok: false, message: `--from must be a JSON object of file names to byte offsets, ${example}.` };
  const offsets = emptyOffsets();
  for (const [key, offset] of Object.entries(value)) {
    if (key === 'sources') {
      const sources = v.safeParse(SourcesSchema, offset);
      if (!sources.success)
        return {
          ok: false,
          message: `--from: "sources" must map file names to {"at":N,"sent":N}, got ${JSON.stringify(offset)}.`,
        };
      offsets.sources = sources.output;
      continue;
    }
    if (!isFollowedFile(key))
      return {
        ok: false,
        message: `--from names an unknown file "${key}"; the followed files are ${FOLLOWED_FILES.join(', ')}.`,
      };
    if (!isOffset(offset))
      return {
        ok: false,
        message: `--from: the offset of ${key} must be a non-negative integer, got ${JSON.stringify(offset)}.`,
      };
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

/** The schema a parsed line must fit, chosen by the key that tells the messages apart. */
function schemaFor(value: Json): MessageSchema | undefined {
  if ('file' in value) return value.malformed === true ? MESSAGES.malformed : MESSAGES.record;
  if (value.ready === true) return MESSAGES.ready;
  if ('run' in value) return MESSAGES.run;
  if ('checkpoints' in value) return MESSAGES.checkpoints;
  if ('reset' in value) return MESSAGES.reset;
  if (value.heartbeat === true) return MESSAGES.heartbeat;
  if ('error' in value) return MESSAGES.error;
  if ('formats' in value) return MESSAGES.formats;
  return undefined;
}

/** Checks a parsed stdout line of the follower; undefined when it is no message of this protocol. */
export function asFollowMessage(value: unknown): FollowMessage | undefined {
  if (!isObject(value)) return undefined;
  const schema = schemaFor(value);
  return schema && parseOrUndefined(schema, value);
}

/** parse + asFollowMessage for one stdout line. */
export function parseFollowMessage(line: string): FollowMessage | undefined {
  return asFollowMessage(parseJson(line));
}

/** The client's bookkeeping: the offsets to pass as --from after this message. */
export function applyFollowMessage(offsets: FollowOffsets, message: FollowMessage): FollowOffsets {
  if ('file' in message) return { ...offsets, [message.file]: message.offset };
  if ('reset' in message) return { ...offsets, [message.reset]: 0 };
  if ('heartbeat' in message) return { ...message.offsets };
  if ('formats' in message) return { ...offsets, sources: message.sources };
  return offsets;
}
