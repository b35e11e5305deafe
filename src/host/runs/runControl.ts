// How every target drives runs, written once: run-folder names and their reservation, starting
// and resuming a detached trainer and waiting until it has taken the run, the trainer log that
// moves into the run folder, stop / resume / delete guards. A target supplies two things:
// - RunFiles: its file system (node:fs here, SFTP on an SSH host);
// - a Launcher: what starts the trainer process and signals it (the bundled node CLI today;
//   torchrun or sbatch plug in here as other launchers).
import type { PlatformPath } from 'node:path';
import { isActiveStatus, observeRunInfo, type ObservedRun } from '../../shared/run';
import { planDelete, type DeletePlan } from './deletePlan';
import type { SlurmJobOptions } from '../slurm/batchScript';
import type { EngineOptions, ResumeOptions, StartRequest } from './types';

/** The trainer's stdout and stderr, beside the run folder while it starts, then inside it. */
export const TRAINER_LOG = 'trainer.log';

/** The target's files, by its own paths (native here, POSIX on an SSH host). */
export interface RunFiles {
  /** The target's flavour of paths (node:path here, posix on an SSH host). */
  paths: PlatformPath;
  exists(path: string): Promise<boolean>;
  /** The size in bytes; 0 when the file is missing. */
  size(path: string): Promise<number>;
  read(path: string): Promise<Buffer>;
  /** The names of the folders in `dir`; none when `dir` is missing. */
  subfolders(dir: string): Promise<string[]>;
  mkdirs(dir: string): Promise<void>;
  /** Creates an empty `path` unless it exists (O_EXCL); false when it did. */
  createExclusive(path: string): Promise<boolean>;
  /** Renames over an existing `to`. */
  rename(from: string, to: string): Promise<void>;
  removeFile(path: string): Promise<void>;
  removeFolder(dir: string): Promise<void>;
  /** The path with symlinks resolved; the path itself (resolved) when that fails. */
  realpath(path: string): Promise<string>;
}

/** What to start: CLI-shaped arguments (`train …` or `resume …`), where, and the log to append to. */
export interface LaunchRequest {
  args: string[];
  cwd: string;
  log: string;
  /** The run folder the trainer takes. */
  runDir: string;
  /** A new run's name, as its trainer will record it (default: the folder's name). */
  name?: string;
  /**
   * The arguments that continue this run from its newest checkpoint (`resume …`): what a launcher
   * whose trainer may be restarted by itself (a requeued Slurm job) runs then.
   */
  continueArgs: string[];
  /** The Slurm job asked for (a Slurm launcher's; the others ignore it). */
  slurm?: SlurmJobOptions;
}

/** A trainer just started by a Launcher. */
export interface LaunchedTrainer {
  pid: number;
  /**
   * Where its output goes when the launcher chose a file in the run folder rather than the
   * request's log (a Slurm job, whose folder exists from submission): the pending log is dropped.
   */
  log?: string;
  /** Whether it still runs (a local child: cheap; a remote one: a round trip). */
  running(): Promise<boolean>;
  /** How it exited as far as this side can tell ("with code 2"), or '' when it cannot. */
  exitNote(): Promise<string>;
  /** Called when start/resume gives up on it (exited, or not going in time): a queued job is cancelled. */
  abandon?(): Promise<void>;
  /** Whether run.json names this trainer; default: its pid is `pid` (a Slurm job is named by its job id). */
  owns?(info: ObservedRun): boolean;
}

/**
 * What starts a trainer process detached (it outlives the editor and the connection), tells
 * whether it lives and signals it. Each takes the run's run.json, so a launcher whose trainers are
 * not plain pids (a Slurm job) finds what it recorded there.
 */
export interface Launcher {
  launch(request: LaunchRequest): Promise<LaunchedTrainer>;
  /** Is the trainer run.json names alive? */
  isAlive(info: ObservedRun): Promise<boolean>;
  /**
   * Asks the trainer of `runDir` to checkpoint and exit (SIGTERM). Throws, having signalled
   * nothing, when the process cannot be told to be that trainer.
   */
  terminate(info: ObservedRun, runDir: string): Promise<void>;
}

export interface RunControlOptions {
  files: RunFiles;
  launcher: Launcher;
  /** The runs root on the target (absolute). */
  runsRoot: () => Promise<string>;
  /** How messages name the target after a path or a trainer: '' here, ' on gpu-box' over SSH. */
  where: string;
  /** How long start()/resume() wait for the trainer to take the run. */
  startTimeoutMs: number;
  /** Poll interval while waiting, and every how many polls the trainer's life is checked. */
  pollMs: number;
  aliveCheckEvery: number;
  /** The clock of run-folder names; default the system's. */
  now?: () => Date;
}

/** A folder-name slug that keeps letters of any script (a Chinese run name stays readable). */
export function slugify(name: string): string {
  const slug = name
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}._-]+/gu, '-')
    .replace(/^[-.]+|-+$/g, '')
    .slice(0, 48);
  return slug || 'run';
}

/** Local time as YYYYMMDD-HHMMSS, the suffix of new run folders. */
export function folderTimestamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const day = `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}`;
  return `${day}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

/** The name a run folder stands for before its run.json says (a queued job's): without the stamp of new folders. */
export function nameOfFolder(folder: string): string {
  return folder.replace(/-\d{8}-\d{6}(-\d+)?$/, '') || folder;
}

/** The CLI arguments of a new run: `train`, or `sft` from a checkpoint. */
export function trainArgs(request: StartRequest, runDir: string): string[] {
  const args =
    request.from !== undefined
      ? ['sft', '--from', request.from, '--data', request.data, '--run-dir', runDir]
      : ['train', '--preset', request.preset, '--data', request.data, '--run-dir', runDir];
  args.push('--steps', String(request.steps));
  for (const setting of request.sets ?? []) args.push('--set', setting);
  if (request.name) args.push('--name', request.name);
  return [...args, ...engineArgs(request.engine)];
}

export function resumeArgs(runDir: string, opts: ResumeOptions): string[] {
  const args = ['resume', runDir];
  if (opts.steps !== undefined) args.push('--steps', String(opts.steps));
  if (opts.checkpoint !== undefined) args.push('--checkpoint', opts.checkpoint);
  return [...args, ...engineArgs(opts.engine)];
}

/** The CLI runs the torch engine under torchrun itself (src/cli/torchrun.ts): only flags here. */
function engineArgs(engine: EngineOptions | undefined): string[] {
  if (!engine) return [];
  const args = ['--engine', engine.name];
  if (engine.nproc !== undefined) args.push('--nproc', String(engine.nproc));
  if (engine.python !== undefined) args.push('--python', engine.python);
  return args;
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

export class RunControl {
  /** Pids SIGTERM was sent to: a second SIGTERM would make the trainer exit without a checkpoint. */
  private readonly stopsSent = new Set<number>();

  constructor(private readonly o: RunControlOptions) {}

  /**
   * Run folders under the runs root: those with a run.json or a metrics.jsonl, and those whose
   * trainer log still lies beside them (a queued Slurm job's, before its trainer writes run.json).
   */
  async listRunDirs(): Promise<string[]> {
    const { files } = this.o;
    const root = await this.o.runsRoot();
    const dirs: string[] = [];
    for (const name of await files.subfolders(root)) {
      const dir = files.paths.join(root, name);
      if (
        (await files.exists(files.paths.join(dir, 'run.json'))) ||
        (await files.exists(files.paths.join(dir, 'metrics.jsonl'))) ||
        (await files.exists(files.paths.join(root, `.${name}.${TRAINER_LOG}`)))
      ) {
        dirs.push(dir);
      }
    }
    return dirs.sort();
  }

  /**
   * Starts a trainer on a new run folder; resolves with it once run.json exists. The trainer
   * refuses a non-empty run dir, so its log starts beside the folder (created exclusively: it
   * also reserves the name against a concurrent start) and moves in once run.json exists.
   */
  async start(request: StartRequest): Promise<string> {
    const root = await this.o.runsRoot();
    await this.o.files.mkdirs(root);
    const { runDir, pendingLog } = await this.reserveRunDir(root, request.name ?? request.preset);
    const runJson = this.o.files.paths.join(runDir, 'run.json');
    let ownLog: string | undefined;
    try {
      const continueArgs = resumeArgs(runDir, { engine: request.engine });
      const args = trainArgs(request, runDir);
      const trainer = await this.o.launcher.launch({
        args,
        cwd: root,
        log: pendingLog,
        runDir,
        name: request.name,
        continueArgs,
        slurm: request.slurm,
      });
      ownLog = trainer.log;
      if (request.waitUntil === 'submitted') {
        // A queued job may wait for hours: the folder exists (a Slurm launcher's holds run.json, pending)
        // so the Runs view follows it at once and shows the job's state until the trainer takes the run.
        await this.o.files.mkdirs(runDir);
        return runDir;
      }
      await this.waitFor(trainer, ownLog ?? pendingLog, 0, () => this.o.files.exists(runJson), 'before the run started');
    } finally {
      await this.settleLog(runDir, pendingLog, ownLog !== undefined);
    }
    return runDir;
  }

  /** SIGTERM once: the trainer checkpoints and exits. A second one is refused. */
  async stop(runDir: string): Promise<void> {
    const info = await this.readInfo(runDir);
    if (!(await this.holds(info))) throw new Error(`Run ${info.name} is not running (status ${info.status}).`);
    if (this.stopsSent.has(info.pid)) {
      throw new Error(`Stop was already requested for run ${info.name}; it is saving a checkpoint.`);
    }
    this.stopsSent.add(info.pid);
    try {
      await this.o.launcher.terminate(info, runDir);
    } catch (err) {
      this.stopsSent.delete(info.pid); // nothing was sent
      throw err;
    }
  }

  /** Detached `resume`; resolves once the new trainer has taken the run over (run.json holds its pid). */
  async resume(runDir: string, opts: ResumeOptions = {}): Promise<void> {
    const info = await this.readInfo(runDir);
    if (await this.holds(info)) throw new Error(`Run ${info.name} is still running (pid ${info.pid}). Stop it first.`);
    const log = this.o.files.paths.join(runDir, TRAINER_LOG);
    const logStart = await this.o.files.size(log);
    const continueArgs = resumeArgs(runDir, { engine: opts.engine });
    const cwd = await this.o.runsRoot();
    const trainer = await this.o.launcher.launch({ args: resumeArgs(runDir, opts), cwd, log, runDir, continueArgs, slurm: opts.slurm });
    if (opts.waitUntil === 'submitted') return; // queued: the Runs view shows the job until its trainer takes over
    const owns = (info: ObservedRun) => (trainer.owns ? trainer.owns(info) : info.pid === trainer.pid);
    const tookOver = async () => {
      const info = await this.readInfo(runDir).catch(() => undefined);
      return info !== undefined && owns(info);
    };
    await this.waitFor(trainer, log, logStart, tookOver, 'before the run resumed');
  }

  /** What Delete Run may do with this folder: remove it only when it is the target's own (real paths). */
  async planDelete(runDir: string): Promise<DeletePlan> {
    const { files } = this.o;
    return planDelete(await files.realpath(runDir), await files.realpath(await this.o.runsRoot()), files.paths);
  }

  /** Removes a run folder of the runs root; any other folder is refused (planDelete). */
  async delete(runDir: string): Promise<void> {
    const { files, where } = this.o;
    const plan = await this.planDelete(runDir);
    if (plan.action !== 'delete') throw new Error(`${plan.why}${where}; not deleting it.`);
    runDir = plan.dir;
    const info = await this.readInfo(runDir).catch(() => undefined);
    if (info && (await this.holds(info))) {
      throw new Error(`Run ${info.name} is still running (pid ${info.pid}). Stop it before deleting it.`);
    }
    // A queued job's folder (cancelled before its trainer began) is empty, its log beside it.
    const pendingLog = files.paths.join(files.paths.dirname(runDir), `.${files.paths.basename(runDir)}.${TRAINER_LOG}`);
    const queued = await files.exists(pendingLog);
    if (!info && !queued && !(await files.exists(files.paths.join(runDir, 'metrics.jsonl')))) {
      throw new Error(`${runDir}${where} is not a run folder (no run.json or metrics.jsonl); not deleting it.`);
    }
    await files.removeFolder(runDir);
    if (queued) await files.removeFile(pendingLog);
  }

  async readInfo(runDir: string): Promise<ObservedRun> {
    const path = this.o.files.paths.join(runDir, 'run.json');
    let value: unknown;
    try {
      value = JSON.parse((await this.o.files.read(path)).toString('utf8'));
    } catch (err) {
      throw new Error(`${path}${this.o.where} is missing or unreadable (${(err as Error).message}).`);
    }
    const observed = observeRunInfo(value);
    if (!observed.ok) throw new Error(`${path}${this.o.where} is not a steelscope run file (${observed.error}).`);
    return observed.run;
  }

  isAlive(info: ObservedRun): Promise<boolean> {
    return this.o.launcher.isAlive(info);
  }

  /** Does a live trainer hold this run (an active status and its pid alive)? */
  private async holds(info: ObservedRun): Promise<boolean> {
    return isActiveStatus(info.status) && (await this.o.launcher.isAlive(info));
  }

  /** A new run folder name (slug-stamp, -2, -3… if taken) and its pending log, created exclusively. */
  private async reserveRunDir(root: string, name: string): Promise<{ runDir: string; pendingLog: string }> {
    const { files } = this.o;
    const base = `${slugify(name)}-${folderTimestamp(this.o.now?.() ?? new Date())}`;
    for (let n = 1; ; n++) {
      const runDir = files.paths.join(root, n === 1 ? base : `${base}-${n}`);
      const pendingLog = files.paths.join(root, `.${files.paths.basename(runDir)}.${TRAINER_LOG}`);
      if (await files.exists(runDir)) continue;
      if (await files.createExclusive(pendingLog)) return { runDir, pendingLog };
    }
  }

  /** Polls `ready` until true; rejects with the log's last lines if the trainer exits first. */
  private async waitFor(
    trainer: LaunchedTrainer,
    log: string,
    logStart: number,
    ready: () => Promise<boolean>,
    what: string,
  ): Promise<void> {
    const { startTimeoutMs, pollMs, aliveCheckEvery, where } = this.o;
    const deadline = Date.now() + startTimeoutMs;
    for (let i = 0; ; i++) {
      if (await ready()) return;
      if ((i + 1) % aliveCheckEvery === 0 && !(await trainer.running())) {
        if (await ready()) return; // it finished in between
        const note = await trainer.exitNote();
        await trainer.abandon?.().catch(() => undefined);
        const tail = await this.logTail(log, logStart);
        throw new Error(`The trainer${where} exited ${note ? `${note} ` : ''}${what}.${tail ? `\n${tail}` : ''}`);
      }
      if (Date.now() > deadline) {
        const limit = `${startTimeoutMs / 1000} s`;
        const note = await trainer.exitNote().catch(() => '');
        await trainer.abandon?.().catch(() => undefined);
        if (note) throw new Error(`The trainer${where} did not get going within ${limit}: ${note}; see ${log}${where}.`);
        throw new Error(
          `The trainer${where} (pid ${trainer.pid}) did not get going within ${limit}; see ${log}${where}.`,
        );
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** The last lines written to `log` after byte `from` (what this trainer said, not earlier ones). */
  private async logTail(log: string, from: number, count = 20): Promise<string> {
    try {
      return lastLines((await this.o.files.read(log)).subarray(from).toString('utf8'), count);
    } catch {
      return '';
    }
  }

  /**
   * Moves the pending log into the run folder once it exists; removes it if the run never started,
   * or if the trainer logs into its folder already (`unused`).
   */
  private async settleLog(runDir: string, pendingLog: string, unused: boolean): Promise<void> {
    const { files } = this.o;
    try {
      if (unused) await files.removeFile(pendingLog);
      else if (await files.exists(files.paths.join(runDir, 'run.json')))
        await files.rename(pendingLog, files.paths.join(runDir, TRAINER_LOG));
      else if (!(await files.exists(runDir))) await files.removeFile(pendingLog);
    } catch {
      // A log that cannot move stays beside the folder; the run itself is unaffected.
    }
  }
}
