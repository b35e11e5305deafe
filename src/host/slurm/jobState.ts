// Slurm job states as `scontrol show job` prints them, and what the Runs view makes of them. Pure
// (no ssh, no vscode): test/unit/slurm-job.test.ts feeds it real output. scontrol is read rather
// than squeue because it also knows finished jobs (for MinJobAge seconds) and needs no accounting
// database; sacct only works where slurmdbd runs. statusWithJob is the one place that decides what
// a Slurm run shows from its run.json and its job together.
import { isActiveStatus, type ObservedRun } from '../../shared/run';
import type { RunDisplayStatus } from '../runs/types';

/** The fields of one job the Runs view and the launcher use. */
export interface SlurmJob {
  id: string;
  /** JobState: PENDING, RUNNING, COMPLETED… (a `+` suffix such as CANCELLED+ is dropped). */
  state: string;
  /** Why it waits or ended (Priority, Resources, PartitionNodeLimit…); 'None' is ''. */
  reason: string;
  nodes: string;
  /** RunTime and TimeLimit as Slurm prints them (D-HH:MM:SS). */
  elapsed: string;
  limit: string;
  restarts: number;
  /** Requeue=1: a preempted or failed node's job comes back to the queue (sbatch --requeue); squeue does not say. */
  requeue?: boolean;
}

/** States in which the job holds (or will hold) resources: the trainer is alive or about to be. */
const LIVE_STATES = new Set([
  'PENDING',
  'CONFIGURING',
  'RUNNING',
  'COMPLETING',
  'SUSPENDED',
  'REQUEUED',
  'REQUEUE_FED',
  'REQUEUE_HOLD',
  'RESIZING',
  'SIGNALING',
  'STAGE_OUT',
  'STOPPED',
]);

/**
 * Does the job hold (or will it hold) resources? A PREEMPTED job that requeues (`requeue`: the job's
 * Requeue=1) is on its way back to the queue, so it lives on: its trainer checkpointed on TERM.
 */
export function isLiveJobState(state: string, requeue = false): boolean {
  return LIVE_STATES.has(state) || (state === 'PREEMPTED' && requeue);
}

/** States of a job waiting in the queue, its batch script not running (first submission or requeued). */
const QUEUED_STATES = new Set(['PENDING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED']);

/** Has the job not started (or been requeued): Stop cancels it outright, nothing to checkpoint. */
export function isQueuedJobState(state: string): boolean {
  return QUEUED_STATES.has(state);
}

/**
 * Reasons a pending job waits for something that will not come without a change by the user or an
 * admin (more nodes or time than the partition allows, an account or QoS it may not use).
 */
const HOPELESS_REASONS = new Set([
  'PartitionNodeLimit',
  'PartitionTimeLimit',
  'BadConstraints',
  'InvalidAccount',
  'InvalidQOS',
  'AssocMaxNodesPerJobLimit',
  'AssocMaxWallDurationPerJobLimit',
  'QOSMaxNodePerJobLimit',
  'QOSMaxWallDurationPerJobLimit',
]);

/** A pending job that can never start as asked. */
export function isHopeless(job: SlurmJob): boolean {
  return job.state === 'PENDING' && HOPELESS_REASONS.has(job.reason);
}

/**
 * One `scontrol show job` record: whitespace-separated Key=Value tokens. Values never hold spaces
 * except Command/WorkDir/StdOut paths and Reason, which we read up to the next token; good enough
 * for the fields above, none of which is a path.
 */
export function parseScontrolJob(text: string): SlurmJob | undefined {
  const fields = new Map<string, string>();
  for (const token of text.split(/\s+/)) {
    const eq = token.indexOf('=');
    if (eq > 0 && !fields.has(token.slice(0, eq))) fields.set(token.slice(0, eq), token.slice(eq + 1));
  }
  const id = fields.get('JobId');
  const state = fields.get('JobState');
  if (!id || !state) return undefined;
  const reason = fields.get('Reason') ?? '';
  const nodes = fields.get('NodeList') ?? '';
  return {
    id,
    state: state.replace(/\+$/, ''),
    reason: reason === 'None' ? '' : reason,
    nodes: nodes === '(null)' ? '' : nodes,
    elapsed: fields.get('RunTime') ?? '',
    limit: fields.get('TimeLimit') ?? '',
    restarts: Number(fields.get('Restarts') ?? 0) || 0,
    requeue: fields.get('Requeue') === '1',
  };
}

/**
 * The Runs view's word for a job state (its own states plus pending / queued ones). Preempted: a
 * job that requeues (`requeue`) comes back pending; one that does not was stopped for good.
 */
export function viewStateOfJob(
  state: string,
  requeue = false,
): 'pending' | 'running' | 'stopping' | 'finished' | 'stopped' | 'failed' {
  switch (state) {
    case 'PENDING':
    case 'CONFIGURING':
    case 'REQUEUED':
    case 'REQUEUE_HOLD':
    case 'REQUEUE_FED':
      return 'pending';
    case 'RUNNING':
    case 'SIGNALING':
    case 'RESIZING':
      return 'running';
    case 'COMPLETING':
    case 'STAGE_OUT':
      return 'stopping';
    case 'COMPLETED':
      return 'finished';
    case 'PREEMPTED':
      return requeue ? 'pending' : 'stopped';
    case 'CANCELLED':
      return 'stopped';
    default: // FAILED, TIMEOUT, NODE_FAIL, OUT_OF_MEMORY, BOOT_FAIL, DEADLINE, SUSPENDED…
      return state === 'SUSPENDED' || state === 'STOPPED' ? 'pending' : 'failed';
  }
}

/**
 * A run's status with its job known: the job's while it waits in the queue, and while the trainer
 * has not written run.json yet; run.json's (the trainer's own word) while the job runs; the job's
 * again when it ended without the trainer saying so (killed at its limit, a node failed).
 *
 * run.json `stopped` is final only once its job has ended. At the time limit or a preemption the
 * trainer checkpoints and writes `stopped`, and only then does the batch script mark the run
 * `pending` and requeue the job (batchScript.ts); a Stop ends with the job cancelled. Until the job
 * leaves the running states the run is `stopping`: no one offers Resume, or reports a stop, for a run
 * about to be requeued. Should the requeue fail, the job ends and the run shows `stopped`.
 */
export function statusWithJob(
  info: ObservedRun | undefined,
  alive: boolean | undefined,
  job: SlurmJob,
): RunDisplayStatus {
  const byJob = viewStateOfJob(job.state, job.requeue);
  if (byJob === 'pending') return 'pending';
  // No trainer has taken the run yet: no run.json, or the pending one written at submission.
  if (!info || (info.status === 'pending' && job.id === info.slurm_job_id)) {
    if (byJob === 'running') return 'starting';
    return byJob === 'finished' ? 'failed' : byJob; // ended without ever writing run.json
  }
  const itsJob = job.id === info.slurm_job_id;
  const jobLives = isLiveJobState(job.state, job.requeue);
  if (info.status === 'stopped' && itsJob && jobLives) return 'stopping';
  const active = isActiveStatus(info.status);
  // The job run.json names ended while run.json still says running: the job says how.
  if (active && itsJob && !jobLives) return byJob;
  return active && alive === false ? 'stale' : info.status;
}

/** The tooltip lines of a job: id and state (with reason), nodes, elapsed / limit. */
export function jobTooltip(job: SlurmJob): string {
  const lines = [`Slurm job ${job.id}: ${job.state}${job.reason ? ` (${job.reason})` : ''}`];
  if (job.nodes) lines.push(`nodes: ${job.nodes}`);
  lines.push(`elapsed ${job.elapsed || '0:00'} of ${job.limit || 'no limit'}`);
  if (job.restarts > 0) lines.push(`requeued ${job.restarts} time${job.restarts > 1 ? 's' : ''}`);
  return lines.join('\n');
}
