// Checkpoints: checkpoints/step-NNNNNNNN/ holding manifest.json, weights.{json,bin},
// optimizer.{json,bin}, tokenizer.json, and an empty DONE written last (llm.c's convention).
// Written into a temp folder, renamed into place, then DONE. A folder without DONE, or whose
// files do not match the sha256 in its manifest, does not exist for any reader.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainConfig } from '../../shared/config';
import { CHECKPOINT_FORMAT, checkpointDirName, parseCheckpointDirName, type DataFileRecord } from '../../shared/run';
import type { DataCursor } from '../data';
import type { RngState } from '../rng';
import { encodeTensors, readTensors } from './tensorfile';
import { writeFileAtomic } from './rundir';

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  step: number;
  tokens: number;
  createdAt: string;
  config: TrainConfig;
  tokenizer: string;
  files: { name: string; sha256: string; bytes: number }[];
  data: { cursor: DataCursor; files: DataFileRecord[] };
  rng: RngState;
  optimizer: { step: number };
  eval_loss: number | null;
  train_loss: number | null;
}

export type Tensors = Map<string, { shape: number[]; data: Float32Array }>;

export interface CheckpointPayload extends Omit<CheckpointManifest, 'format' | 'files' | 'createdAt' | 'tokenizer'> {
  weights: Tensors;
  /** AdamW moments, named m.<param> and v.<param>. */
  optimizerState: Tensors;
  tokenizerJson: string;
}

export function sha256(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function checkpointsDir(runDir: string): string {
  return join(runDir, 'checkpoints');
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
  const files: [string, string | Buffer][] = [
    ['weights.json', weightsIndex],
    ['weights.bin', weightsBin],
    ['optimizer.json', optIndex],
    ['optimizer.bin', optBin],
    ['tokenizer.json', payload.tokenizerJson],
  ];
  const records: CheckpointManifest['files'] = [];
  for (const [name, data] of files) {
    writeFileAtomic(join(tmpDir, name), data);
    records.push({ name, sha256: sha256(data), bytes: Buffer.byteLength(data) });
  }
  const { weights: _w, optimizerState: _o, tokenizerJson: _t, ...rest } = payload;
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    ...rest,
    createdAt: new Date().toISOString(),
    tokenizer: 'tokenizer.json',
    files: records,
  };
  writeFileAtomic(join(tmpDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  // A re-save of the same step (resume after a crash) replaces the old folder.
  rmSync(finalDir, { recursive: true, force: true });
  renameSync(tmpDir, finalDir);
  writeFileSync(join(finalDir, 'DONE'), '');
  return finalDir;
}

export type Verified = { ok: true; manifest: CheckpointManifest } | { ok: false; reason: string };

/** Checks DONE, the manifest and every file's sha256. */
export function verifyCheckpoint(dir: string): Verified {
  if (!existsSync(join(dir, 'DONE'))) return { ok: false, reason: 'no DONE marker (the write did not finish)' };
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as CheckpointManifest;
  } catch (err) {
    return { ok: false, reason: `manifest.json unreadable: ${(err as Error).message}` };
  }
  if (manifest.format !== CHECKPOINT_FORMAT || !Array.isArray(manifest.files)) {
    return { ok: false, reason: `manifest.json is not a ${CHECKPOINT_FORMAT} manifest` };
  }
  for (const f of manifest.files) {
    const path = join(dir, f.name);
    if (!existsSync(path)) return { ok: false, reason: `${f.name} is missing` };
    const actual = sha256(readFileSync(path));
    if (actual !== f.sha256) return { ok: false, reason: `${f.name} does not match its sha256 (expected ${f.sha256.slice(0, 12)}…, found ${actual.slice(0, 12)}…)` };
  }
  return { ok: true, manifest };
}

export interface CheckpointEntry {
  step: number;
  dir: string;
}

/** Checkpoint folders by ascending step (complete or not; temp folders excluded). */
export function listCheckpoints(runDir: string): CheckpointEntry[] {
  const root = checkpointsDir(runDir);
  if (!existsSync(root)) return [];
  const entries: CheckpointEntry[] = [];
  for (const name of readdirSync(root)) {
    const step = parseCheckpointDirName(name);
    if (step !== undefined && statSync(join(root, name)).isDirectory()) entries.push({ step, dir: join(root, name) });
  }
  return entries.sort((a, b) => a.step - b.step);
}

/** The newest checkpoint that verifies; each one passed over is reported with its reason. */
export function latestValidCheckpoint(
  runDir: string,
  onSkip: (entry: CheckpointEntry, reason: string) => void,
): { entry: CheckpointEntry; manifest: CheckpointManifest } | undefined {
  const entries = listCheckpoints(runDir);
  for (let i = entries.length - 1; i >= 0; i--) {
    const result = verifyCheckpoint(entries[i].dir);
    if (result.ok) return { entry: entries[i], manifest: result.manifest };
    onSkip(entries[i], result.reason);
  }
  return undefined;
}

export interface LoadedCheckpoint {
  manifest: CheckpointManifest;
  weights: Tensors;
  optimizerState: Tensors;
  tokenizerJson: unknown;
}

/** Verifies then reads a checkpoint folder; throws with the reason when it is not valid. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const result = verifyCheckpoint(dir);
  if (!result.ok) throw new Error(`Checkpoint ${dir} cannot be used: ${result.reason}.`);
  return {
    manifest: result.manifest,
    weights: readTensors(join(dir, 'weights.json'), join(dir, 'weights.bin')),
    optimizerState: readTensors(join(dir, 'optimizer.json'), join(dir, 'optimizer.bin')),
    tokenizerJson: JSON.parse(readFileSync(join(dir, result.manifest.tokenizer), 'utf8')),
  };
}

/**
 * Keeps the newest `keep` complete checkpoints plus the one with the lowest eval loss; removes
 * the rest and any temp folder left by a killed writer. Returns the steps removed.
 */
export function pruneCheckpoints(runDir: string, keep: number): number[] {
  const root = checkpointsDir(runDir);
  if (!existsSync(root)) return [];
  for (const name of readdirSync(root)) {
    if (name.startsWith('.tmp-') && !name.endsWith(`-${process.pid}`)) rmSync(join(root, name), { recursive: true, force: true });
  }
  const complete = listCheckpoints(runDir).filter((e) => existsSync(join(e.dir, 'DONE')));
  let best: { step: number; loss: number } | undefined;
  for (const e of complete) {
    const loss = readEvalLoss(e.dir);
    if (loss !== null && (!best || loss < best.loss)) best = { step: e.step, loss };
  }
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

function readEvalLoss(dir: string): number | null {
  try {
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Partial<CheckpointManifest>;
    return typeof m.eval_loss === 'number' ? m.eval_loss : null;
  } catch {
    return null;
  }
}
