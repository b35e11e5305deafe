// Trainers on a Slurm cluster through its login node: the batch script (batchScript.ts) written
// beside the run, submitted with `sbatch --parsable`; the job's life read from `scontrol show job`
// (no accounting database needed); Stop = `scancel --signal=TERM --full`, then a plain `scancel`
// if the job still lives after a grace period. run.json names the job (slurm_job_id, written by
// the trainer from SLURM_JOB_ID), which is how a job submitted earlier, or by another editor, is
// found again.
import { posix } from 'node:path';
import type { ObservedRun } from '../../shared/run';
import type { LaunchedTrainer, Launcher, LaunchRequest } from '../runs/runControl';
import type { RemoteCli } from '../ssh/deploy';
import { shQuote } from '../ssh/quote';
import type { RemoteHost } from '../ssh/remoteHost';
import { writeRemoteFile } from '../ssh/sftp';
import { batchScript, sbatchCommand, type SlurmJobOptions } from './batchScript';
import { isHopeless, isLiveJobState, parseScontrolJob, type SlurmJob } from './jobState';

export interface SlurmLauncherOptions {
  /** The job of a start or resume that names none (the host's remembered choices). */
  defaultJob?: () => SlurmJobOptions | undefined;
  /** How long after Stop's TERM a job still alive is cancelled outright. Default 300 s. */
  stopGraceMs?: number;
}

/** The batch script's file: in the run folder once it exists, beside it (hidden) before. */
export function scriptPath(request: LaunchRequest): string {
  const name = `slurm-job-${Date.now()}.sh`;
  return request.args[0] === 'train'
    ? posix.join(posix.dirname(request.runDir), `.${posix.basename(request.runDir)}.${name}`)
    : posix.join(request.runDir, name);
}

export class SlurmLauncher implements Launcher {
  constructor(
    private readonly host: RemoteHost,
    private readonly cli: RemoteCli,
    private readonly options: SlurmLauncherOptions = {},
  ) {}

  async launch(request: LaunchRequest): Promise<LaunchedTrainer> {
    const job = request.slurm ?? this.options.defaultJob?.();
    if (!job) throw new Error(`Choose a partition for jobs on ${this.host.label} first.`);
    const jobName = posix.basename(request.runDir);
    const cli = await this.cli.command([]);
    const script = batchScript({
      job,
      jobName,
      runDir: request.runDir,
      cli,
      firstArgs: request.args,
      continueArgs: request.continueArgs,
    });
    const path = scriptPath(request);
    await writeRemoteFile(await this.host.sftp(), path, script);
    const out = await this.host.sh(sbatchCommand(request.cwd, path, request.log), 'sbatch');
    const jobId = out.trim().split('\n').pop()?.split(';')[0] ?? '';
    if (!/^\d+$/.test(jobId)) throw new Error(`sbatch on ${this.host.label} printed no job id: ${out.trim()}`);
    return {
      pid: Number(jobId),
      // A job that can never start as asked counts as ended: start() says why and cancels it.
      running: async () => {
        const found = await this.job(jobId);
        return found !== undefined && isLiveJobState(found.state) && !isHopeless(found);
      },
      exitNote: async () => {
        const found = await this.job(jobId);
        if (!found) return '';
        const reason = found.reason ? ` (${found.reason})` : '';
        if (isHopeless(found)) return `(Slurm job ${jobId} is PENDING${reason} and cannot start as asked; cancelled)`;
        return `(Slurm job ${jobId}: ${found.state}${reason})`;
      },
      abandon: () => this.cancelIfAlive(jobId),
      owns: (info) => info.slurm_job_id === jobId,
    };
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
    return isLiveJobState((await this.job(info.slurm_job_id))?.state ?? '');
  }

  async terminate(info: ObservedRun): Promise<void> {
    const jobId = info.slurm_job_id;
    if (!jobId) throw new Error(`Run ${info.name} names no Slurm job in its run.json; nothing was cancelled.`);
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
      if (isLiveJobState((await this.job(jobId))?.state ?? ''))
        await this.host.sh(`scancel ${shQuote(jobId)}`, 'scancel');
    } catch {
      // The host is gone or the job too: nothing more to do from here.
    }
  }
}
