// The one place that decides whether a checkpoint folder is valid, in which order checkpoints
// come and which is best (src/shared/checkpoint.ts holds the format and the best rule). Used by
// the trainers and the CLI (resume, sample, serve, info), by `steelscope follow` on an SSH host,
// and by the extension host for local runs and downloads. Plain Node (node:fs); never webviews.
//
// Nothing in a checkpoint folder is trusted: the manifest is read with a size cap and checked
// against the format's schema; each data file must be a regular file (lstat: no symlinks, no
// devices or FIFOs) whose size matches the manifest before a byte of it is read; its sha256 is
// checked on the bytes that are then used.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, type Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  bestCheckpointIndex,
  CHECKPOINT_DATA_FILES,
  DONE_FILE,
  MANIFEST_FILE,
  MANIFEST_MAX_BYTES,
  parseManifest,
  rankingLoss,
  type RankedCheckpoint,
  type CheckpointDataFile,
  type CheckpointManifest,
} from '../checkpoint';
import type { TrainConfig } from '../config';
import {
  DEFAULT_SHOTS,
  EVAL_LOSS,
  evalScore,
  EVALS_FILE,
  evalTaskName,
  isEvalRecord,
  parseBestBy,
  type EvalRecord,
} from '../eval';
import { parseCheckpointDirName } from '../run';

/** A checkpoint refused for what is in its folder; the CLI prints the message alone and exits 2. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export type CheckpointCheck = { ok: true; manifest: CheckpointManifest } | { ok: false; reason: string };

/** A step-NNNNNNNN folder under a run's checkpoints/ (complete or not). */
export interface CheckpointFolder {
  step: number;
  dir: string;
}

const CHUNK = 1024 * 1024;

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** Why `path` is not a regular file of `bytes` bytes (when given), or undefined when it is. */
function regularFileProblem(path: string, name: string, bytes?: number): string | undefined {
  const st = lstatOrUndefined(path);
  if (!st) return `${name} is missing`;
  if (!st.isFile()) return `${name} is not a regular file${st.isSymbolicLink() ? ' (a symbolic link)' : ''}`;
  if (bytes !== undefined && st.size !== bytes) return `${name} has ${st.size} bytes, the manifest says ${bytes}`;
  return undefined;
}

/**
 * Calls `onChunk` with the bytes of a regular file, never more than `maxBytes` of them in all and
 * never through a symbolic link (O_NOFOLLOW; a FIFO is refused by lstat before it is opened).
 */
function readChunks(path: string, name: string, maxBytes: number, onChunk: (chunk: Buffer) => void): number {
  const problem = regularFileProblem(path, name);
  if (problem) throw new CheckpointError(problem);
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CheckpointError(`${name} is not a regular file`);
    if (st.size > maxBytes)
      throw new CheckpointError(`${name} has ${st.size} bytes, more than the ${maxBytes} allowed`);
    const buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, st.size)));
    let total = 0;
    while (total < st.size) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, st.size - total), total);
      if (n === 0) break; // shrank while being read: the size or hash check says so
      onChunk(buffer.subarray(0, n));
      total += n;
    }
    return total;
  } finally {
    closeSync(fd);
  }
}

/** The whole of a regular file of at most maxBytes (see readChunks); throws CheckpointError. */
export function readRegularFile(path: string, name: string, maxBytes: number): Buffer {
  const chunks: Buffer[] = [];
  readChunks(path, name, maxBytes, (c) => chunks.push(Buffer.from(c)));
  return Buffer.concat(chunks);
}

function hashProblem(name: string, expected: string, actual: string): string | undefined {
  if (actual === expected) return undefined;
  return `${name} does not match its sha256 (expected ${expected.slice(0, 12)}…, found ${actual.slice(0, 12)}…)`;
}

function recordOf(manifest: CheckpointManifest, name: CheckpointDataFile) {
  const record = manifest.files.find((f) => f.name === name);
  if (!record) throw new CheckpointError(`the manifest does not list ${name}`); // parseManifest makes this unreachable
  return record;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Checkpoint validity, the one definition: DONE (a regular file), a manifest of the format within
 * its cap, each of the format's data files a regular file of the manifest's size, and (with
 * `hashes`) each file's sha256. Never throws; the reason says what is wrong.
 */
export function checkCheckpoint(dir: string, opts: { hashes: boolean }): CheckpointCheck {
  if (!lstatOrUndefined(join(dir, DONE_FILE)))
    return { ok: false, reason: 'no DONE marker (the write did not finish)' };
  const done = regularFileProblem(join(dir, DONE_FILE), DONE_FILE);
  if (done) return { ok: false, reason: done };
  let parsed;
  try {
    parsed = parseManifest(readRegularFile(join(dir, MANIFEST_FILE), MANIFEST_FILE, MANIFEST_MAX_BYTES));
  } catch (err) {
    return { ok: false, reason: `manifest.json unreadable: ${describe(err)}` };
  }
  if (!parsed.ok) return parsed;
  const { manifest } = parsed;
  for (const name of CHECKPOINT_DATA_FILES) {
    const problem = regularFileProblem(join(dir, name), name, recordOf(manifest, name).bytes);
    if (problem) return { ok: false, reason: problem };
  }
  if (opts.hashes) {
    for (const name of CHECKPOINT_DATA_FILES) {
      const record = recordOf(manifest, name);
      try {
        const hash = createHash('sha256');
        readChunks(join(dir, name), name, record.bytes, (c) => hash.update(c));
        const problem = hashProblem(name, record.sha256, hash.digest('hex'));
        if (problem) return { ok: false, reason: problem };
      } catch (err) {
        return { ok: false, reason: describe(err) };
      }
    }
  }
  return { ok: true, manifest };
}

/**
 * One data file of a checked checkpoint, read once: a regular file of exactly the manifest's
 * size, whose bytes match its sha256. Throws CheckpointError naming the file.
 */
export function readCheckpointFile(dir: string, manifest: CheckpointManifest, name: CheckpointDataFile): Buffer {
  const record = recordOf(manifest, name);
  const bytes = readRegularFile(join(dir, name), name, record.bytes);
  if (bytes.length !== record.bytes)
    throw new CheckpointError(`${name} has ${bytes.length} bytes, the manifest says ${record.bytes}`);
  const problem = hashProblem(name, record.sha256, createHash('sha256').update(bytes).digest('hex'));
  if (problem) throw new CheckpointError(problem);
  return bytes;
}

export function checkpointsDir(runDir: string): string {
  return join(runDir, 'checkpoints');
}

/** Checkpoint order, the one definition: ascending step. */
export function byStep(a: { step: number }, b: { step: number }): number {
  return a.step - b.step;
}

/** step-NNNNNNNN folders (not links) by ascending step, complete or not; temp folders never match. */
export function listCheckpointFolders(runDir: string): CheckpointFolder[] {
  const root = checkpointsDir(runDir);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const folders: CheckpointFolder[] = [];
  for (const name of names) {
    const step = parseCheckpointDirName(name);
    if (step !== undefined && lstatOrUndefined(join(root, name))?.isDirectory())
      folders.push({ step, dir: join(root, name) });
  }
  return folders.sort(byStep);
}

/**
 * The newest checkpoint that is valid (hashes included) and that `accept` takes (a reason
 * string refuses it); each one passed over is reported with its reason.
 */
export function latestValidCheckpoint(
  runDir: string,
  onSkip: (folder: CheckpointFolder, reason: string) => void,
  accept: (manifest: CheckpointManifest) => string | undefined = () => undefined,
): { folder: CheckpointFolder; manifest: CheckpointManifest } | undefined {
  const folders = listCheckpointFolders(runDir);
  for (let i = folders.length - 1; i >= 0; i--) {
    const result = checkCheckpoint(folders[i].dir, { hashes: true });
    const refusal = result.ok ? accept(result.manifest) : result.reason;
    if (result.ok && refusal === undefined) return { folder: folders[i], manifest: result.manifest };
    onSkip(folders[i], refusal ?? '');
  }
  return undefined;
}

/** What an observer knows about a checkpoint without loading it (hashes are checked on load). */
export interface CheckpointSummary {
  step: number;
  dir: string;
  /** Its rank under a task-metric best_by (scoreByBestBy); absent when eval loss ranks. */
  score?: number | null;
  /** The manifest's eval loss when finite, else null. */
  evalLoss: number | null;
  /** The best by bestCheckpointIndex (by the config's best_by: eval loss, or a task metric). */
  best: boolean;
  /** DONE, a valid manifest and the format's files with their sizes (hashes are checked on load). */
  complete: boolean;
  /** Why a checkpoint with DONE is not complete (a skipped checkpoint), for the user to see. */
  problem?: string;
}

/** Structural checks of complete folders, valid while DONE keeps its mtime (a re-save writes a new one). */
export type CheckpointScanCache = Map<string, { doneMtimeMs: number; check: CheckpointCheck }>;

async function doneMtime(dir: string): Promise<number | undefined> {
  try {
    return (await lstat(join(dir, DONE_FILE))).mtimeMs;
  } catch {
    return undefined;
  }
}

/** evals.jsonl is a few records per checkpoint; a file beyond this is not read for ranking. */
const EVALS_MAX_BYTES = 64 * 1024 * 1024;

/** The records of a run's evals.jsonl (complete lines that are records; others skipped), [] when none. */
export function readEvalRecords(runDir: string): EvalRecord[] {
  let text: string;
  try {
    text = readRegularFile(join(runDir, EVALS_FILE), EVALS_FILE, EVALS_MAX_BYTES).toString('utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n').slice(0, -1); // a last line without its newline is not yet a line
  const records: EvalRecord[] = [];
  for (const line of lines) {
    try {
      const value: unknown = JSON.parse(line);
      if (isEvalRecord(value)) records.push(value);
    } catch {
      // a malformed line is skipped, as every reader of the run format does
    }
  }
  return records;
}

/**
 * Gives each checkpoint its score by the config's best_by (saved in every manifest): for a task
 * metric, its macro average at the checkpoint's step from evals.jsonl, from records of the shots
 * eval_tasks gives that task (a `steelscope eval` at other shots does not rank); for eval_loss (or
 * no config) the list is returned as it is and the eval loss ranks.
 */
export function scoreByBestBy<T extends RankedCheckpoint>(runDir: string, list: T[], config?: TrainConfig): T[] {
  const by = parseBestBy(config?.best_by ?? EVAL_LOSS);
  if (typeof by === 'string' || by.kind === 'eval_loss') return list;
  return scoreByEvals(list, readEvalRecords(runDir), config);
}

/** scoreByBestBy on records already read (the extension's tracker holds them; a followed run has no local file). */
export function scoreByEvals<T extends RankedCheckpoint>(
  list: T[],
  records: readonly EvalRecord[],
  config?: TrainConfig,
): T[] {
  const by = parseBestBy(config?.best_by ?? EVAL_LOSS);
  if (typeof by === 'string' || by.kind === 'eval_loss') return list;
  const spec = (config?.eval_tasks ?? []).find((t) => evalTaskName(t) === by.task);
  const shots = spec?.shots ?? DEFAULT_SHOTS;
  const ranked = records.filter((r) => r.shots === undefined || r.shots === shots);
  for (const c of list) c.score = evalScore(ranked, c.step, by);
  return list;
}

/** Marks the best of a list by the format's rule (bestCheckpointIndex). */
export function markBest<T extends CheckpointSummary>(list: T[]): T[] {
  for (const c of list) c.best = false;
  const best = bestCheckpointIndex(list);
  if (best >= 0) list[best].best = true;
  return list;
}

/**
 * The folders of listCheckpointFolders (ascending step), each checked as checkCheckpoint does
 * without hashes (cached per DONE mtime); `best` marked.
 */
export async function scanCheckpoints(
  runDir: string,
  cache: CheckpointScanCache = new Map(),
): Promise<CheckpointSummary[]> {
  const found: CheckpointSummary[] = [];
  let config: TrainConfig | undefined; // the newest complete checkpoint's says what best is
  for (const { step, dir } of listCheckpointFolders(runDir)) {
    const mtime = await doneMtime(dir);
    if (mtime === undefined) {
      found.push({ step, dir, complete: false, evalLoss: null, best: false }); // still being written
      continue;
    }
    const cached = cache.get(dir);
    const check = cached?.doneMtimeMs === mtime ? cached.check : checkCheckpoint(dir, { hashes: false });
    cache.set(dir, { doneMtimeMs: mtime, check });
    if (check.ok) config = check.manifest.config;
    found.push(
      check.ok
        ? { step, dir, complete: true, evalLoss: rankingLoss(check.manifest.eval_loss), best: false }
        : { step, dir, complete: false, evalLoss: null, best: false, problem: check.reason },
    );
  }
  for (const dir of cache.keys()) if (!found.some((c) => c.dir === dir)) cache.delete(dir); // pruned
  return markBest(scoreByBestBy(runDir, found, config)); // listCheckpointFolders gives them in order
}

export function sameCheckpoints(a: readonly CheckpointSummary[], b: readonly CheckpointSummary[]): boolean {
  return (
    a.length === b.length &&
    a.every((c, i) => {
      const d = b[i];
      return (
        c.step === d.step &&
        c.complete === d.complete &&
        c.evalLoss === d.evalLoss &&
        c.score === d.score &&
        c.best === d.best &&
        c.dir === d.dir &&
        c.problem === d.problem
      );
    })
  );
}
