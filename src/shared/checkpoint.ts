// The checkpoint format (steelscope.checkpoint/1), shared by both engines and every reader:
// the fixed set of file names, the manifest's schema and size caps, and the rule for "best".
// Pure (no node:fs) so the extension host, `steelscope follow` and the trainers read checkpoints
// by the same rules; src/shared/node/checkpoints.ts applies them to folders on disk.
//
//   checkpoints/step-NNNNNNNN/
//     manifest.json    this schema (at most MANIFEST_MAX_BYTES)
//     weights.json     tensor index (steelscope.tensors/1) of weights.bin
//     weights.bin      float32 payload
//     optimizer.json   tensor index of optimizer.bin (AdamW moments m.<param>, v.<param>)
//     optimizer.bin
//     tokenizer.json   steelscope.tokenizer/1
//     DONE             empty, written last
//
// A checkpoint is exactly these names: the manifest lists the five data files once each, with
// their sizes and sha256; other entries in the folder are never read.
import * as v from 'valibot';
import { validateConfig, type TrainConfig } from './config';
import { CHECKPOINT_FORMAT, decodeMetric } from './run';

export { CHECKPOINT_FORMAT };

export const MANIFEST_FILE = 'manifest.json';
export const DONE_FILE = 'DONE';
export const TOKENIZER_FILE = 'tokenizer.json';

/** The data files a manifest lists, in the order the trainers write them. */
export const CHECKPOINT_DATA_FILES = [
  'weights.json',
  'weights.bin',
  'optimizer.json',
  'optimizer.bin',
  TOKENIZER_FILE,
] as const;
export type CheckpointDataFile = (typeof CHECKPOINT_DATA_FILES)[number];

/** Every name a checkpoint folder holds: nothing else is part of it. */
export const CHECKPOINT_FILES = [MANIFEST_FILE, ...CHECKPOINT_DATA_FILES, DONE_FILE] as const;

const MiB = 1024 * 1024;
export const MANIFEST_MAX_BYTES = 1 * MiB;
/** A tensor index names a few hundred tensors (the 1.12B shape: ~220); 8 MiB is far above that. */
export const TENSOR_INDEX_MAX_BYTES = 8 * MiB;
/** 151,936 ids of merges are ~3 MB of JSON. */
export const TOKENIZER_MAX_BYTES = 64 * MiB;

/** Size caps of the JSON files, checked against the manifest before anything is read. */
export const CHECKPOINT_FILE_CAPS: Readonly<Record<CheckpointDataFile, number>> = {
  'weights.json': TENSOR_INDEX_MAX_BYTES,
  'weights.bin': Number.MAX_SAFE_INTEGER,
  'optimizer.json': TENSOR_INDEX_MAX_BYTES,
  'optimizer.bin': Number.MAX_SAFE_INTEGER,
  'tokenizer.json': TOKENIZER_MAX_BYTES,
};

const Count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const Sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (a sha256)'));
const Uint32 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff));

const ManifestFileSchema = v.object({
  name: v.picklist(CHECKPOINT_DATA_FILES, `must be one of ${CHECKPOINT_DATA_FILES.join(', ')}`),
  sha256: Sha256,
  bytes: Count,
});
export type ManifestFile = v.InferOutput<typeof ManifestFileSchema>;

function isExactFileSet(files: ManifestFile[]): boolean {
  const names = new Set(files.map((f) => f.name));
  return files.length === CHECKPOINT_DATA_FILES.length && CHECKPOINT_DATA_FILES.every((n) => names.has(n));
}

/** Why a config is not a valid TrainConfig, or undefined when it is. */
function configProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be an object';
  try {
    validateConfig(value as TrainConfig);
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** eval_loss / train_loss: a number, null, or the run format's "NaN"/"Infinity"/"-Infinity" markers. */
const Loss = v.pipe(
  v.optional(v.nullable(v.union([v.number(), v.picklist(['NaN', 'Infinity', '-Infinity'])])), null),
  v.transform((value): number | null => (value === null ? null : (decodeMetric(value) ?? null))),
);

const ManifestSchema = v.object({
  format: v.literal(CHECKPOINT_FORMAT, `must be "${CHECKPOINT_FORMAT}"`),
  /** run.json's id of the run that wrote it; absent in checkpoints written before it was recorded. */
  run_id: v.optional(v.pipe(v.string(), v.maxLength(200))),
  step: Count,
  tokens: Count,
  createdAt: v.string(),
  config: v.custom<TrainConfig>(
    (value) => configProblem(value) === undefined,
    (issue) => configProblem(issue.input) ?? 'invalid',
  ),
  tokenizer: v.literal(TOKENIZER_FILE, `must be "${TOKENIZER_FILE}" (the checkpoint's own tokenizer)`),
  files: v.pipe(
    v.array(ManifestFileSchema),
    v.check(isExactFileSet, `must list exactly ${CHECKPOINT_DATA_FILES.join(', ')}, once each`),
    v.check(
      (files: ManifestFile[]) => files.every((f) => f.bytes <= CHECKPOINT_FILE_CAPS[f.name]),
      `index and tokenizer files are capped at ${TENSOR_INDEX_MAX_BYTES / MiB} and ${TOKENIZER_MAX_BYTES / MiB} MiB`,
    ),
  ),
  data: v.object({
    cursor: v.object({ seed: Count, epoch: Count, index: Count }),
    files: v.array(v.object({ path: v.string(), sha256: Sha256, bytes: Count })),
  }),
  rng: v.tuple([Uint32, Uint32, Uint32, Uint32]),
  optimizer: v.object({ step: Count }),
  eval_loss: Loss,
  train_loss: Loss,
});

export type CheckpointManifest = v.InferOutput<typeof ManifestSchema>;
/** What a writer puts in a manifest (losses as numbers; JSON turns a non-finite one into null). */
export type ManifestInput = v.InferInput<typeof ManifestSchema>;

export type ManifestResult = { ok: true; manifest: CheckpointManifest } | { ok: false; reason: string };

/** Parses and checks manifest.json's bytes; never throws. The reason names the first bad field. */
export function parseManifest(bytes: Uint8Array): ManifestResult {
  if (bytes.length > MANIFEST_MAX_BYTES)
    return { ok: false, reason: `manifest.json is over ${MANIFEST_MAX_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (err) {
    return { ok: false, reason: `manifest.json unreadable: ${err instanceof Error ? err.message : String(err)}` };
  }
  const parsed = v.safeParse(ManifestSchema, value);
  if (parsed.success) return { ok: true, manifest: parsed.output };
  const issue = parsed.issues[0];
  const where = v.getDotPath(issue) ?? 'manifest';
  return { ok: false, reason: `manifest.json is not a ${CHECKPOINT_FORMAT} manifest: ${where} ${issue.message}` };
}

/** The eval loss a checkpoint is ranked by: finite, or none. */
export function rankingLoss(evalLoss: number | null | undefined): number | null {
  return typeof evalLoss === 'number' && Number.isFinite(evalLoss) ? evalLoss : null;
}

export interface RankedCheckpoint {
  step: number;
  /** Passed the structural check (DONE, manifest, the fixed files with their sizes). */
  complete: boolean;
  evalLoss: number | null;
  /**
   * What it is ranked by when the config's best_by is a task metric (evalScore: lower is better,
   * an accuracy negated); absent: its eval loss.
   */
  score?: number | null;
}

const rankOf = (c: RankedCheckpoint): number | null => (c.score !== undefined ? c.score : rankingLoss(c.evalLoss));

/**
 * The one rule for the best checkpoint: the lowest finite score (best_by: the eval loss, or a task
 * metric from evals.jsonl) among complete checkpoints; on a tie the earliest step. Returns its index
 * in `list`, or -1 when none has a finite score.
 */
export function bestCheckpointIndex(list: readonly RankedCheckpoint[]): number {
  let best = -1;
  list.forEach((c, i) => {
    const loss = rankOf(c);
    if (!c.complete || loss === null) return;
    const current = best < 0 ? null : rankOf(list[best]);
    if (current === null || loss < current || (loss === current && c.step < list[best].step)) best = i;
  });
  return best;
}
