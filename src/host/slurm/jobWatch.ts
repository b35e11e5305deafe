// The Slurm jobs of a login node's runs, polled with one `squeue` of the user's jobs (finished
// ones included while slurmctld keeps them) at a modest interval, only while some run of the host
// may be in the queue. A job belongs to a run by the id run.json names, or before the trainer has
// written run.json (a job still pending) by its name, which the launcher makes from the run
// folder's (jobNameOf); a resumed run's newer job wins. Parsing and matching are pure
// (test/unit/slurm-login.test.ts).
import { posix } from 'node:path';
import { isActiveStatus, type ObservedRun } from '../../shared/run';
import type { RunKey, RunSummary } from '../runs/types';
import type { RemoteHost } from '../ssh/remoteHost';
import { jobNameOf } from './batchScript';
import { isLiveJobState, type SlurmJob } from './jobState';

/** A job as squeue lists it, with its name (how a run without run.json finds its job). */
export interface QueuedJob extends SlurmJob {
  name: string;
}

/** id, name, state, reason, nodes, time used, time limit. */
export const SQUEUE_FORMAT = '%i|%j|%T|%r|%N|%M|%l';

/** The user's jobs, finished ones included (kept MinJobAge seconds); no accounting database needed. */
export const SQUEUE_COMMAND = `squeue -h -t all -u "$USER" -o '${SQUEUE_FORMAT}'`;

/** `squeue -o SQUEUE_FORMAT` lines; a line that does not have the seven fields is skipped. */
export function parseSqueue(text: string): QueuedJob[] {
  const jobs: QueuedJob[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split('|');
    if (fields.length !== 7) continue;
    const [id = '', name = '', state = '', reason = '', nodes = '', elapsed = '', limit = ''] = fields;
    if (!/^\d+(_\d+)?$/.test(id)) continue;
    const clean = (s: string) => (s === 'None' || s === '(null)' || s === 'UNLIMITED' ? '' : s);
    jobs.push({
      id,
      name,
      state: state.replace(/\+$/, ''),
      reason: clean(reason),
      nodes: clean(nodes),
      elapsed,
      limit: clean(limit),
      restarts: 0,
    });
  }
  return jobs;
}

/** The newest job of the run in `dir`: the one run.json names, or a later one under its folder's name. */
export function jobOfRun(
  jobs: readonly QueuedJob[],
  dir: string,
  info: ObservedRun | undefined,
): QueuedJob | undefined {
  // A run.json without a job id is a run started on the host itself, whatever its folder is called.
  if (info && !info.slurm_job_id) return undefined;
  const name = jobNameOf(posix.basename(dir));
  const mine = jobs.filter((j) => j.id === info?.slurm_job_id || j.name === name);
  return mine.sort((a, b) => Number(b.id.split('_')[0]) - Number(a.id.split('_')[0]))[0];
}

/** Whether a run may still be in the queue (so worth polling for). */
function watched(run: RunSummary): boolean {
  if (!run.info) return run.job === undefined || isLiveJobState(run.job.state);
  if (!run.info.slurm_job_id) return false;
  return isActiveStatus(run.info.status) || (run.job !== undefined && isLiveJobState(run.job.state));
}

/**
 * Whether run.json says stopped while the job it names still runs: the trainer saved its checkpoint
 * and the batch script is cancelling or requeueing the job, within a second or two. The run shows
 * `stopping` (jobState.ts statusWithJob) until a poll sees the job end.
 */
function stoppingOnLiveJob(run: RunSummary): boolean {
  const { info, job } = run;
  if (info?.status !== 'stopped' || !job || job.id !== info.slurm_job_id) return false;
  return isLiveJobState(job.state, job.requeue);
}

/** How soon the next poll comes while a run is stopping: its job ends within seconds. */
export const SETTLE_POLL_MS = 1_000;

export interface JobSink {
  /** The runs of this host (summaries). */
  runs(): RunSummary[];
  setJob(key: RunKey, job: SlurmJob | undefined): void;
}

export class SlurmJobWatch {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  /** Ticks of the timer since the last poll began. */
  private ticksSincePoll = 0;
  /** The last poll's jobs, for Stop of a run that has no run.json yet. */
  private latest: QueuedJob[] = [];

  constructor(
    private readonly host: Pick<RemoteHost, 'state' | 'sh'>,
    private readonly sink: JobSink,
    /** Whether the host is a Slurm login node (probed); no squeue elsewhere. */
    private readonly isSlurm: () => boolean,
    private readonly intervalMs = 10_000,
  ) {}

  /**
   * Polls every intervalMs, or every SETTLE_POLL_MS while a run is stopping, so a Stop shows
   * `stopped` about a second after the job ends rather than up to intervalMs later.
   */
  start(): void {
    const tickMs = Math.min(this.intervalMs, SETTLE_POLL_MS);
    this.timer ??= setInterval(() => {
      this.ticksSincePoll++;
      const dueMs = this.sink.runs().some(stoppingOnLiveJob) ? SETTLE_POLL_MS : this.intervalMs;
      if (this.ticksSincePoll * tickMs >= dueMs) void this.poll();
    }, tickMs);
    this.timer.unref();
  }

  dispose(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The job of a run as last seen (undefined if none was). */
  jobOf(dir: string, info: ObservedRun | undefined): QueuedJob | undefined {
    return jobOfRun(this.latest, dir, info);
  }

  /** One poll now (after a start or a Stop; the timer does the rest). Failures wait for the next one. */
  async poll(force = false): Promise<void> {
    const runs = this.sink.runs();
    if (this.polling || this.host.state !== 'connected' || !this.isSlurm()) return;
    if (!force && !runs.some(watched)) return;
    this.polling = true;
    this.ticksSincePoll = 0;
    try {
      this.latest = parseSqueue(await this.host.sh(SQUEUE_COMMAND, 'squeue', 30_000));
      for (const run of this.sink.runs()) this.sink.setJob(run.key, jobOfRun(this.latest, run.dir, run.info));
    } catch {
      // The connection dropped or squeue failed: the next poll tries again; the view keeps what it had.
    } finally {
      this.polling = false;
    }
  }
}
