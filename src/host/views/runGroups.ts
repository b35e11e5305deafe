// Which runs of a host the Runs view groups under their folder: runs without run.json (a foreign
// logger's, found by "Open Run Folder…") that share a parent folder with another such run, such as
// lightning_logs/version_0, version_1, ... Our own runs (with run.json) are never grouped: they
// all live in the runs folder. Pure, so it is tested without VS Code.
import { posix } from 'node:path';
import type { RunSummary } from '../runs/types';

export type RunEntry = { kind: 'run'; run: RunSummary } | { kind: 'group'; dir: string; runs: RunSummary[] };

/** `runs` (already in display order) as top-level entries: single runs and folders of several. */
export function groupRuns(runs: readonly RunSummary[]): RunEntry[] {
  const byParent = new Map<string, RunSummary[]>();
  for (const run of runs) {
    if (run.info) continue;
    const parent = posix.dirname(run.dir.replaceAll('\\', '/'));
    byParent.set(parent, [...(byParent.get(parent) ?? []), run]);
  }
  const entries: RunEntry[] = [];
  const placed = new Set<string>();
  for (const run of runs) {
    const parent = posix.dirname(run.dir.replaceAll('\\', '/'));
    const siblings = run.info ? undefined : byParent.get(parent);
    if (!siblings || siblings.length < 2) entries.push({ kind: 'run', run });
    else if (!placed.has(parent)) {
      placed.add(parent);
      entries.push({ kind: 'group', dir: parent, runs: siblings });
    }
  }
  return entries;
}
