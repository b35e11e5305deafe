// What an observer knows about a run's checkpoints without loading them: the step-NNNNNNNN
// folders, whether DONE exists, and the eval loss from manifest.json. Hashes are checked only when
// a checkpoint is loaded (by the CLI), never here. Plain Node (node:fs): used by the extension
// host for local runs and by `steelscope follow` on an SSH host; never by webviews.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseCheckpointDirName } from '../run';

export interface CheckpointSummary {
  step: number;
  dir: string;
  evalLoss: number | null;
  /** Lowest eval loss among complete checkpoints. */
  best: boolean;
  /** DONE exists (hashes are checked only when a checkpoint is loaded). */
  complete: boolean;
}

/** Eval losses of complete checkpoints by folder, valid while DONE keeps its mtime (a re-save writes a new one). */
export type EvalLossCache = Map<string, { doneMtimeMs: number; evalLoss: number | null }>;

async function doneMtime(dir: string): Promise<number | undefined> {
  try {
    return (await stat(join(dir, 'DONE'))).mtimeMs;
  } catch {
    return undefined;
  }
}

async function evalLossOf(dir: string): Promise<number | null> {
  try {
    const manifest: unknown = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    if (typeof manifest !== 'object' || manifest === null) return null;
    const loss = (manifest as { eval_loss?: unknown }).eval_loss;
    return typeof loss === 'number' && Number.isFinite(loss) ? loss : null;
  } catch {
    return null;
  }
}

/** Checkpoints by ascending step; `best` marks the lowest eval loss among complete ones. */
export async function scanCheckpoints(runDir: string, cache: EvalLossCache = new Map()): Promise<CheckpointSummary[]> {
  const root = join(runDir, 'checkpoints');
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  const found: CheckpointSummary[] = [];
  for (const name of names) {
    const step = parseCheckpointDirName(name); // temp folders (.tmp-step-…) never match
    if (step === undefined) continue;
    const dir = join(root, name);
    const mtime = await doneMtime(dir);
    let evalLoss: number | null = null;
    if (mtime !== undefined) {
      const cached = cache.get(dir);
      evalLoss = cached?.doneMtimeMs === mtime ? cached.evalLoss : await evalLossOf(dir);
      cache.set(dir, { doneMtimeMs: mtime, evalLoss });
    }
    found.push({ step, dir, complete: mtime !== undefined, evalLoss, best: false });
  }
  for (const dir of cache.keys()) if (!found.some((c) => c.dir === dir)) cache.delete(dir); // pruned
  found.sort((a, b) => a.step - b.step);
  let best: CheckpointSummary | undefined;
  for (const c of found) if (c.complete && c.evalLoss !== null && (!best || c.evalLoss < (best.evalLoss ?? Infinity))) best = c;
  if (best) best.best = true;
  return found;
}

export function sameCheckpoints(a: readonly CheckpointSummary[], b: readonly CheckpointSummary[]): boolean {
  return a.length === b.length && a.every((c, i) => c.step === b[i].step && c.complete === b[i].complete && c.evalLoss === b[i].evalLoss && c.best === b[i].best && c.dir === b[i].dir);
}
