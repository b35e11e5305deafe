// What a command is handed by a menu (the clicked Runs-view item and the selection) or by anyone
// calling it with executeCommand: checked against these schemas before use, never cast. A command
// that gets something else acts as if called from the palette (it asks).
import * as v from 'valibot';
import { nonNegativeInt, str } from '../../shared/schema';
import type { RunKey } from '../runs/types';

/** Any Runs-view item that belongs to a run (the run, its checkpoints, its samples). */
const RunItemArg = v.looseObject({ kind: v.picklist(['run', 'checkpoint', 'samples', 'sample']), key: str });
const RunNodeArg = v.looseObject({ kind: v.literal('run'), key: str });
const CheckpointItemArg = v.looseObject({
  kind: v.literal('checkpoint'),
  key: str,
  checkpoint: v.looseObject({ step: nonNegativeInt, dir: str }),
});
const HostItemArg = v.looseObject({ kind: v.literal('host'), hostId: str });

export type CheckpointItem = v.InferOutput<typeof CheckpointItemArg>;

/** The run keys a command was invoked on: the tree selection, else the clicked item, else none. */
export function keysFromArgs(node: unknown, nodes: unknown): RunKey[] {
  const list: unknown[] = Array.isArray(nodes) && nodes.length ? nodes : node ? [node] : [];
  const keys = list.filter((n) => v.is(RunItemArg, n)).map((n) => n.key);
  return [...new Set(keys)];
}

/** The run of a run item, else undefined. */
export function runKeyArg(node: unknown): RunKey | undefined {
  return v.is(RunNodeArg, node) ? node.key : undefined;
}

/** A checkpoint item (its run's key, step and folder), else undefined. */
export function checkpointArg(node: unknown): CheckpointItem | undefined {
  return v.is(CheckpointItemArg, node) ? node : undefined;
}

/** The host of a host item, else undefined. */
export function hostIdArg(node: unknown): string | undefined {
  return v.is(HostItemArg, node) ? node.hostId : undefined;
}
