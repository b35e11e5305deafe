// Trainers on a Slurm cluster through its login node: the batch script (batchScript.ts) written
// into the run folder, submitted with `sbatch --parsable`, run.json `pending` until the trainer runs; the job's life read from `scontrol show job`
// (no accounting database needed); Stop = `scancel --signal=TERM --full`, then a plain `scancel`
// if the job still lives after a grace period. run.json names the job (slurm_job_id, written at
// submission and by the trainer from SLURM_JOB_ID), which is how a job submitted earlier, or by another editor, is
// found again.
import { posix } from 'node:path';
import { randomUUID } from 'node:crypto';
import { observeRunInfo, pendingRunInfo, type ObservedRun } from '../../shared/run';
import { TRAINER_LOG, type LaunchedTrainer, type Launcher, type LaunchRequest } from '../runs/runControl';
import type { RemoteCli } from '../ssh/deploy';
import { shQuote } from '../ssh/quote';
import type { RemoteHost } from '../ssh/remoteHost';
import { readRemoteRegularFile, renameOver, writeRemoteFile } from '../ssh/sftp';
import { batchScript, sbatchCommand, type SlurmJobOptions } from './batchScript';
import { isLiveJobState, isQueuedJobState, parseScontrolJob, type SlurmJob } from './jobState';

export interface SlurmLauncherOptions {
  /** The job of a start or resume that names none (the host's remembered choices). */
  defaultJob?: () => SlurmJobOptions | undefined;
  /** How long after Stop's TERM a job still alive is cancelled outright. Default 300 s. */
  stopGraceMs?: number;
}

/** The batch script's file, in the run folder (which exists from the submission on). */
export function scriptPath(runDir: string): string {
  return posix.join(runDir, `slurm-job-${Date.now()}.sh`);
}

const now = () => new Date().toISOString();

const isLive = (job: SlurmJob | undefined) => job !== undefined && isLiveJobState(job.state, job.requeue ?? false);

/** run.json's size limit when the launcher rewrites it for a Resume job (as the Runs view reads it). */
const RUN_JSON_MAX_BYTES = 4 << 20;

export class SlurmLauncher implements Launcher {
  constructor(
    private readonly host: RemoteHost,
    /** Only its command line is used (a test may wrap it). */
    private readonly cli: Pick<RemoteCli, 'command'>,
    private readonly options: SlurmLauncherOptions = {},
  ) {}

  /**
   * Submits the job and returns at once: the job may wait in the queue for hours. It is submitted
   * held, run.json says `pending` with its job id (a new run's placeholder, or the resumed run's
   * own run.json), and only then released, so the trainer always finds that run.json and never
   * races it. The script and the job's log are in the run folder.
   */
  async launch(request: LaunchRequest): Promise<LaunchedTrainer> {
    const job = request.slurm ?? this.options.defaultJob?.();
    if (!job) throw new Error(`Choose a partition for jobs on ${this.host.label} first.`);
    const { runDir } = request;
    const cli = await this.cli.command([]);
    const script = batchScript({
      job,
      jobName: posix.basename(runDir),
      runDir,
      cli,
      firstArgs: request.args,
      continueArgs: request.continueArgs,
    });
    await this.host.sh(`mkdir -p ${shQuote(runDir)}`, 'mkdir');
    const path = scriptPath(runDir);
    await writeRemoteFile(await this.host.sftp(), path, script);
    const log = posix.join(runDir, TRAINER_LOG);
    const out = await this.host.sh(sbatchCommand(request.cwd, path, log, { hold: true }), 'sbatch');
    const jobId = out.trim().split('\n').pop()?.split(';')[0] ?? '';
    if (!/^\d+$/.test(jobId)) throw new Error(`sbatch on ${this.host.label} printed no job id: ${out.trim()}`);
    try {
      await this.markPending(request, jobId);
      await this.host.sh(`scontrol release ${shQuote(jobId)}`, 'scontrol release');
    } catch (err) {
      await this.host.sh(`scancel ${shQuote(jobId)}`, 'scancel').catch(() => undefined);
      throw err;
    }
    return {
      pid: Number(jobId),
      log,
      running: async () => isLive(await this.job(jobId)),
      exitNote: async () => {
        const found = await this.job(jobId);
        return found ? `(Slurm job ${jobId}: ${found.state}${found.reason ? ` (${found.reason})` : ''})` : '';
      },
      abandon: () => this.cancelIfAlive(jobId),
      owns: (info) => info.slurm_job_id === jobId,
    };
  }

  /**
   * run.json says the run waits for job `jobId`: a new run's placeholder (`train`, `sft`), or the
   * resumed run's own, marked. Its pid is the new job's id, as a new run's is: the one Stop was sent
   * to before (and refuses to send to twice) is the previous job's.
   */
  private async markPending(request: LaunchRequest, jobId: string): Promise<void> {
    if (request.args[0] === 'resume') {
      await this.updateRunJson(request.runDir, (run) => ({
        ...run,
        status: 'pending',
        pid: Number(jobId),
        slurm_job_id: jobId,
      }));
      return;
    }
    const name = request.name ?? posix.basename(request.runDir);
    const info = pendingRunInfo({ id: randomUUID(), name, createdAt: now(), host: this.host.label, jobId });
    await this.writeRunJson(request.runDir, info);
  }

  /** Rewrites run.json with what `change` makes of it (nothing when it returns undefined). */
  private async updateRunJson(runDir: string, change: (run: ObservedRun) => ObservedRun | undefined): Promise<void> {
    const path = posix.join(runDir, 'run.json');
    const text = (await readRemoteRegularFile(await this.host.sftp(), path, RUN_JSON_MAX_BYTES)).toString('utf8');
    const observed = observeRunInfo(JSON.parse(text));
    if (!observed.ok)
      throw new Error(`${path} on ${this.host.label} is not a steelscope run file (${observed.error}).`);
    const changed = change(observed.run);
    if (changed) await this.writeRunJson(runDir, changed);
  }

  /** run.json replaced whole (temp file, then rename), as the trainers write it. */
  private async writeRunJson(runDir: string, info: ObservedRun): Promise<void> {
    const sftp = await this.host.sftp();
    const path = posix.join(runDir, 'run.json');
    const temp = `${path}.tmp-launcher-${randomUUID()}`;
    await writeRemoteFile(sftp, temp, JSON.stringify(info, null, 2) + '\n');
    await renameOver(sftp, temp, path);
  }

  /** One job as scontrol shows it; undefined once Slurm has forgotten it (MinJobAge) or never knew it. */
  async job(jobId: string): Promise<SlurmJob | undefined> {
    const r = await (await this.host.connection()).run(`scontrol show job -o ${shQuote(jobId)}`, { timeoutMs: 30_000 });
    if (r.code !== 0) {
      if (/invalid job id/i.test(r.stderr + r.stdout)) return undefined;
      throw new Error(`scontrol show job ${jobId} failed on ${this.host.label}: ${(r.stderr || r.stdout).trim()}`);
    }
    return parseScontrolJob(r.stdout);
  }

  async isAlive(info: ObservedRun): Promise<boolean> {
    if (!info.slurm_job_id) return false;
    return isLive(await this.job(info.slurm_job_id));
  }

  /** Stop: a queued job is cancelled (run.json says stopped); a running one asked to checkpoint first. */
  async terminate(info: ObservedRun, runDir: string): Promise<void> {
    const jobId = info.slurm_job_id;
    if (!jobId) throw new Error(`Run ${info.name} names no Slurm job in its run.json; nothing was cancelled.`);
    if (isQueuedJobState((await this.job(jobId))?.state ?? '')) {
      await this.host.sh(`scancel ${shQuote(jobId)}`, `Cancelling the queued job of run ${info.name}`);
      await this.updateRunJson(runDir, (run) =>
        run.status === 'pending' && run.slurm_job_id === jobId
          ? { ...run, status: 'stopped', exit: { code: 0, reason: 'cancelled in the queue', at: now() } }
          : undefined,
      );
      return;
    }
    await this.host.sh(`scancel --signal=TERM --full ${shQuote(jobId)}`, `Stopping run ${info.name}`);
    const grace = setTimeout(() => void this.cancelIfAlive(jobId), this.options.stopGraceMs ?? 300_000);
    grace.unref();
  }

  /** A job whose trainer has not started (still pending): nothing to checkpoint, so cancelled outright. */
  async cancel(jobId: string): Promise<void> {
    await this.host.sh(`scancel ${shQuote(jobId)}`, `Cancelling Slurm job ${jobId}`);
  }

  /** After Stop's grace period (its trainer did not exit on TERM), or a start given up: a live job is cancelled. */
  private async cancelIfAlive(jobId: string): Promise<void> {
    try {
      if (isLive(await this.job(jobId))) await this.host.sh(`scancel ${shQuote(jobId)}`, 'scancel');
    } catch {
      // The host is gone or the job too: nothing more to do from here.
    }
  }
}
