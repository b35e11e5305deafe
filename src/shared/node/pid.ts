// Whether a pid is a live process on this machine, written once for the trainer (is the run
// held by another live trainer?), the torchrun supervisor and the extension's local launcher.
import { readFileSync } from 'node:fs';
import { isActiveStatus, isPendingRunOf, type RunInfo } from '../run';

/** Is `pid` a live process here? A zombie (exited, not yet reaped by its parent) is not. */
export function isPidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
  try {
    // "pid (comm) S …": the state follows the last ')'. Linux only; elsewhere kill(0) must do.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

/**
 * Does another live trainer on this machine hold the run (an active status, its pid alive)? A run
 * pending for the Slurm job this process runs in is this process's to take.
 */
export function heldByOtherTrainer(info: RunInfo): boolean {
  if (isPendingRunOf(info, process.env.SLURM_JOB_ID)) return false;
  return isActiveStatus(info.status) && info.pid !== process.pid && isPidAlive(info.pid);
}
