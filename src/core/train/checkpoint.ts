// Writing and loading checkpoints of the TensorFlow.js engine, and pruning those of both engines.
// The format (the fixed file names, the manifest) is src/shared/checkpoint.ts; validity, order and
// the best checkpoint are decided in src/shared/node/checkpoints.ts for every reader. Written into
// a temp folder, renamed into place, then DONE (llm.c's convention).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bestCheckpointIndex,
  CHECKPOINT_FORMAT,
  DONE_FILE,
  MANIFEST_FILE,
  TOKENIZER_FILE,
  type CheckpointDataFile,
  type CheckpointManifest,
  type ManifestInput,
} from '../../shared/checkpoint';
import {
  checkCheckpoint,
  checkpointsDir,
  CheckpointError,
  listCheckpointFolders,
  readCheckpointFile,
  scoreByBestBy,
} from '../../shared/node/checkpoints';
import { checkpointDirName } from '../../shared/run';
import { decodeTensors, encodeTensors, parseTensorIndex } from './tensorfile';
import { writeFileAtomic } from './rundir';

export type { CheckpointManifest };

export type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

export interface CheckpointPayload extends Omit<
  ManifestInput,
  'format' | 'files' | 'createdAt' | 'tokenizer' | 'eval_loss' | 'train_loss'
> {
  /** Non-finite losses are saved as null. */
  eval_loss: number | null;
  train_loss: number | null;
  weights: Tensors;
  /** AdamW moments, named m.<param> and v.<param>. */
  optimizerState: Tensors;
  tokenizerJson: string;
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Saves atomically and returns the checkpoint's folder. */
export function saveCheckpoint(runDir: string, payload: CheckpointPayload): string {
  const root = checkpointsDir(runDir);
  mkdirSync(root, { recursive: true });
  const finalDir = join(root, checkpointDirName(payload.step));
  const tmpDir = join(root, `.tmp-${checkpointDirName(payload.step)}-${process.pid}`);
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir);

  const [weightsIndex, weightsBin] = encodeTensors(payload.weights);
  const [optIndex, optBin] = encodeTensors(payload.optimizerState);
  const files: [CheckpointDataFile, string | Buffer][] = [
    ['weights.json', weightsIndex],
    ['weights.bin', weightsBin],
    ['optimizer.json', optIndex],
    ['optimizer.bin', optBin],
    [TOKENIZER_FILE, payload.tokenizerJson],
  ];
  const records: ManifestInput['files'] = [];
  for (const [name, data] of files) {
    writeFileAtomic(join(tmpDir, name), data);
    records.push({ name, sha256: sha256(data), bytes: Buffer.byteLength(data) });
  }
  const { weights: _w, optimizerState: _o, tokenizerJson: _t, ...rest } = payload;
  const manifest: ManifestInput = {
    format: CHECKPOINT_FORMAT,
    ...rest,
    createdAt: new Date().toISOString(),
    tokenizer: TOKENIZER_FILE,
    files: records,
  };
  writeFileAtomic(join(tmpDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  // A re-save of the same step (resume after a crash) replaces the old folder.
  rmSync(finalDir, { recursive: true, force: true });
  renameSync(tmpDir, finalDir);
  writeFileSync(join(finalDir, DONE_FILE), '');
  return finalDir;
}

export interface LoadedCheckpoint {
  manifest: CheckpointManifest;
  weights: Tensors;
  optimizerState: Tensors;
  tokenizerJson: unknown;
}

/** Tensors of one index + payload pair, the index checked against the payload's size first. */
function loadTensors(
  dir: string,
  manifest: CheckpointManifest,
  index: 'weights.json' | 'optimizer.json',
  payload: 'weights.bin' | 'optimizer.bin',
): Tensors {
  const payloadBytes = manifest.files.find((f) => f.name === payload)?.bytes ?? 0;
  const parsed = parseTensorIndex(readCheckpointFile(dir, manifest, index), payloadBytes, index);
  return decodeTensors(parsed, readCheckpointFile(dir, manifest, payload));
}

/**
 * Checks then reads a checkpoint folder (every file read once, its size and hash checked on the
 * bytes used); throws CheckpointError with the reason when it is not valid.
 */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const result = checkCheckpoint(dir, { hashes: false });
  if (!result.ok) throw new CheckpointError(`Checkpoint ${dir} cannot be used: ${result.reason}.`);
  const { manifest } = result;
  try {
    const weights = loadTensors(dir, manifest, 'weights.json', 'weights.bin');
    const optimizerState = loadTensors(dir, manifest, 'optimizer.json', 'optimizer.bin');
    const tokenizerText = readCheckpointFile(dir, manifest, TOKENIZER_FILE).toString('utf8');
    return { manifest, weights, optimizerState, tokenizerJson: JSON.parse(tokenizerText) };
  } catch (err) {
    throw new CheckpointError(`Checkpoint ${dir} cannot be used: ${err instanceof Error ? err.message : String(err)}.`);
  }
}

export interface PruneOptions {
  /**
   * Remove temp folders that are not this process's (left by a killed writer). Default true, for
   * the writer itself; false while another process writes (the torch supervisor during its run).
   */
  staleTemps?: boolean;
}

/**
 * The one pruning rule, for both engines (the PyTorch engine's supervisor, src/cli/torchrun.ts,
 * applies it to what that engine writes): keeps the newest `keep` complete checkpoints plus the
 * best (bestCheckpointIndex); removes the rest and any temp folder left by a killed writer.
 * Returns the steps removed.
 */
export function pruneCheckpoints(runDir: string, keep: number, opts: PruneOptions = {}): number[] {
  const root = checkpointsDir(runDir);
  if (!existsSync(root)) return [];
  for (const name of opts.staleTemps === false ? [] : readdirSync(root)) {
    if (name.startsWith('.tmp-') && !name.endsWith(`-${process.pid}`))
      rmSync(join(root, name), { recursive: true, force: true });
  }
  const complete = listCheckpointFolders(runDir).filter((f) => existsSync(join(f.dir, DONE_FILE)));
  const manifests = complete.map((f) => readManifest(f.dir));
  const ranked = complete.map((f, i) => ({ ...f, complete: true, evalLoss: manifests[i]?.eval_loss ?? null }));
  // best_by is saved with every checkpoint's config; the newest one's decides.
  const config = manifests.filter((m) => m !== undefined).pop()?.config;
  const best = ranked[bestCheckpointIndex(scoreByBestBy(runDir, ranked, config))];
  const keepSteps = new Set(complete.slice(-keep).map((e) => e.step));
  if (best) keepSteps.add(best.step);
  const removed: number[] = [];
  for (const e of complete) {
    if (keepSteps.has(e.step)) continue;
    rmSync(e.dir, { recursive: true, force: true });
    removed.push(e.step);
  }
  return removed;
}

/** The manifest, or undefined when it is not valid (such a folder is never best). */
function readManifest(dir: string): CheckpointManifest | undefined {
  const check = checkCheckpoint(dir, { hashes: false });
  return check.ok ? check.manifest : undefined;
}
