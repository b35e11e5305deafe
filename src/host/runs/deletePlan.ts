// What "Delete Run" may remove. A folder the extension created (a direct child of the target's
// runs root, compared by real path so a symlink cannot point the delete elsewhere) is the run's
// own and goes as a whole. A folder observed from elsewhere ("Open Run Folder…") belongs to
// someone else and may hold anything beside the run's files: it is only forgotten. Pure: the
// targets resolve the real paths (fs.realpath here, SFTP realpath on a host).
import { posix, type PlatformPath } from 'node:path';

export type DeletePlan =
  /** Remove `dir` recursively: the run folder the target created. */
  | { action: 'delete'; dir: string }
  /** Stop observing `dir`; nothing on disk changes. `why` says so to the user. */
  | { action: 'forget'; dir: string; why: string };

/**
 * Decides from real paths (symlinks resolved) whether `realDir` is a run folder the target owns.
 * `pathApi` is the target's flavour of paths (POSIX on SSH hosts; this machine's locally).
 */
export function planDelete(realDir: string, realRunsRoot: string, pathApi: PlatformPath = posix): DeletePlan {
  const dir = pathApi.resolve(realDir);
  const root = pathApi.resolve(realRunsRoot);
  const rel = pathApi.relative(root, dir);
  // A direct child: one path segment, not the root itself, not its parent.
  const ownChild = rel !== '' && rel !== '..' && !pathApi.isAbsolute(rel) && !rel.includes(pathApi.sep);
  if (ownChild) return { action: 'delete', dir };
  return { action: 'forget', dir, why: `${dir} is not a run folder in the runs folder ${root}` };
}

/** The confirmation text: names the full path and what will (or will not) happen to it. */
export function deleteQuestion(plan: DeletePlan, name: string, hostLabel: string): string {
  if (plan.action === 'delete') {
    return `Delete run ${name} on ${hostLabel}? The folder ${plan.dir} is removed with all its checkpoints and logs. This cannot be undone.`;
  }
  return `Forget run ${name}? ${plan.why}, so nothing is deleted: the folder ${plan.dir} and its files stay where they are, and the run is no longer shown.`;
}
