// What a folder holds: our run format (run.json or metrics.jsonl) or one of the foreign logs we
// read (TensorBoard event files, a CSV metrics log, Hugging Face trainer state), and where the runs
// of a folder that holds several are (lightning_logs/version_*, one event-file folder per run, as
// TensorBoard does). One run per folder; a folder with several formats is read as the first of
// FORMAT_ORDER that it holds.
import { existsSync, readdirSync, type Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { RunFormat, RunFormatReader, SourcePositions } from './batch';
import { CsvFileReader } from './csv';
import { EventFolderReader, isEventFileName } from './tfevents';
import { TRAINER_STATE, TrainerStateReader } from './trainerState';

export type FolderFormat = 'steelscope' | RunFormat;

export const CSV_LOG = 'metrics.csv';

const FORMAT_NAMES: Record<FolderFormat, string> = {
  steelscope: 'Steelscope run',
  tfevents: 'TensorBoard event files',
  csv: 'CSV metrics log',
  'trainer-state': 'Hugging Face trainer state',
};

export function formatName(format: FolderFormat): string {
  return FORMAT_NAMES[format];
}

const isCheckpointDir = (name: string): boolean => /^checkpoint-\d+$/.test(name);

/** The format of the run in `dir` itself (not its sub-folders), from the names in it. */
export function formatOfEntries(dir: string, entries: readonly Dirent[]): FolderFormat | undefined {
  const files = new Set(entries.filter((e) => e.isFile()).map((e) => e.name));
  if (files.has('run.json') || files.has('metrics.jsonl')) return 'steelscope';
  if ([...files].some(isEventFileName)) return 'tfevents';
  if (files.has(CSV_LOG)) return 'csv';
  const hfCheckpoint = entries.some(
    (e) => e.isDirectory() && isCheckpointDir(e.name) && existsSync(join(dir, e.name, TRAINER_STATE)),
  );
  if (files.has(TRAINER_STATE) || hfCheckpoint) return 'trainer-state';
  return undefined;
}

/** The format of the run in `dir` (synchronous: one readdir), or undefined when it holds none. */
export function formatOf(dir: string): FolderFormat | undefined {
  try {
    return formatOfEntries(dir, readdirSync(dir, { withFileTypes: true }));
  } catch {
    return undefined;
  }
}

/**
 * A folder's format as its readers decide it: looked for again on each `detect()` until a file in
 * the folder tells it, then fixed. A reader may start on a folder before the writer's first file
 * (a TensorBoard or CSV run that was just launched); deciding once, at the start, read such a folder
 * as ours for good and never showed its records. `steelscope follow` asks on each pass, the local
 * run store on each poll.
 */
export class FormatDetector {
  private told: FolderFormat | undefined;

  constructor(readonly dir: string) {}

  /** The folder's format, or undefined while no file in it tells it yet. */
  detect(): FolderFormat | undefined {
    return (this.told ??= formatOf(this.dir));
  }
}

export interface FoundRun {
  dir: string;
  format: FolderFormat;
  /** The run's path below the folder searched ('' for the folder itself), for names and grouping. */
  relative: string;
}

/** Folders that are parts of a run, never runs of their own. */
const SKIPPED = new Set(['checkpoints', 'node_modules', '.git']);

/**
 * Every run in `root` and its sub-folders, at most `depth` levels down (litgpt's
 * out/logs/tensorboard/version_0 is 3 below out). A run's own sub-folders are searched too
 * (TensorBoard: train/ and eval/ event folders under a run folder are runs of their own), except
 * Hugging Face checkpoint-N/ folders, which are part of their output folder's run.
 */
export async function findRuns(root: string, depth = 4): Promise<FoundRun[]> {
  const found: FoundRun[] = [];
  const visit = async (dir: string, left: number): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const format = formatOfEntries(dir, entries);
    if (format) found.push({ dir, format, relative: relative(root, dir) });
    if (format === 'steelscope' || left === 0) return;
    const subs = entries
      .filter((e) => e.isDirectory() && !SKIPPED.has(e.name) && !isCheckpointDir(e.name))
      .map((e) => e.name);
    for (const name of subs.sort(naturalOrder)) await visit(join(dir, name), left - 1);
  };
  await visit(root, depth);
  return found;
}

/** version_2 before version_10. */
function naturalOrder(a: string, b: string): number {
  return a.localeCompare(b, undefined, { numeric: true });
}

/** One line for the user: what was found in the folder. */
export function describeFound(runs: readonly FoundRun[]): string {
  const counts = new Map<FolderFormat, number>();
  for (const run of runs) counts.set(run.format, (counts.get(run.format) ?? 0) + 1);
  const parts = [...counts].map(([format, n]) => `${n} × ${formatName(format)}`);
  return `${runs.length} run${runs.length === 1 ? '' : 's'} found: ${parts.join(', ')}.`;
}

/** The reader of a foreign run folder, resumed at `from` (what `positions()` said before a restart). */
export function openFormatReader(dir: string, format: RunFormat, from: SourcePositions = {}): RunFormatReader {
  if (format === 'tfevents') return new EventFolderReader(dir, from);
  if (format === 'csv') return new CsvFileReader(join(dir, CSV_LOG), from[CSV_LOG]);
  return new TrainerStateReader(dir, from[TRAINER_STATE]);
}
