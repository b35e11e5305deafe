// Runs on this machine: trainers are `node dist/cli.js train|resume …` started DETACHED (their own
// process group, stdio to a log file, unref'd), so they outlive the extension host, a window
// reload or the editor closing. Everything else is read back from the run directory.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { access, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { isRunInfo, type RunInfo } from '../../shared/run';
import type { RunTarget, StartRequest } from './types';

export interface LocalTargetOptions {
  /** Folder that new runs are created in. */
  runsRoot: string;
  /** The node binary for trainers (see resolveNodePath); never Electron's. */
  nodePath: string;
  /** The bundled dist/cli.js. */
  cliPath: string;
  /** Environment of trainers; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** How long start() waits for run.json (or resume() for its pid) before giving up. Default 120 s. */
  startTimeoutMs?: number;
  id?: string;
  label?: string;
}

/** A trainer this target spawned; `exit` is set once this process sees it end. */
interface Trainer {
  pid: number;
  exit: string | undefined;
  exited: Promise<void>;
}

const ACTIVE = new Set(['starting', 'running', 'stopping']);
const LOG_NAME = 'trainer.log';

/** A folder-name slug that keeps letters of any script (a Chinese run name stays readable). */
export function slugify(name: string): string {
  const slug = name.normalize('NFKC').toLowerCase().replace(/[^\p{L}\p{N}._-]+/gu, '-').replace(/^[-.]+|-+$/g, '').slice(0, 48);
  return slug || 'run';
}

function timestamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** The last lines written to `path` after byte `from` (what this process said, not earlier runs). */
function lastLines(path: string, from: number, count = 20): string {
  try {
    const lines = readFileSync(path).subarray(from).toString('utf8').trimEnd().split('\n');
    return lines.slice(-count).join('\n');
  } catch {
    return '';
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

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

export class LocalTarget implements RunTarget {
  readonly id: string;
  readonly label: string;
  readonly runsRoot: string;
  private readonly startTimeoutMs: number;
  /** Pids this target has sent SIGTERM to (pids are not reused soon enough to matter here). */
  private readonly stopsSent = new Set<number>();

  constructor(private readonly options: LocalTargetOptions) {
    this.id = options.id ?? 'local';
    this.label = options.label ?? 'This machine';
    this.runsRoot = resolve(options.runsRoot);
    this.startTimeoutMs = options.startTimeoutMs ?? 120_000;
  }

  async listRunDirs(): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(this.runsRoot, { withFileTypes: true });
    } catch {
      return [];
    }
    const dirs: string[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const dir = join(this.runsRoot, entry.name);
      if ((await exists(join(dir, 'run.json'))) || (await exists(join(dir, 'metrics.jsonl')))) dirs.push(dir);
    }
    return dirs.sort();
  }

  async start(request: StartRequest): Promise<string> {
    // The trainer refuses a non-empty run dir, so its log starts beside the folder (created
    // exclusively: it also reserves the name against a concurrent start) and moves in once
    // run.json exists; the trainer's open descriptor follows the rename.
    const { runDir, pendingLog, fd } = this.reserveRunDir(request.name ?? request.preset);
    const args = ['train', '--preset', request.preset, '--data', request.data, '--run-dir', runDir, '--steps', String(request.steps)];
    for (const setting of request.sets ?? []) args.push('--set', setting);
    if (request.name) args.push('--name', request.name);
    try {
      const trainer = await this.spawnDetached(args, fd);
      await this.waitFor(trainer, pendingLog, 0, async () => exists(join(runDir, 'run.json')), 'before the run started');
    } finally {
      await this.settleLog(runDir, pendingLog);
    }
    return runDir;
  }

  /** SIGTERM once: the trainer checkpoints and exits. A second SIGTERM would make it exit without one, so it is refused. */
  async stop(runDir: string): Promise<void> {
    const info = await this.readInfo(runDir);
    if (!ACTIVE.has(info.status) || !this.isAliveNow(info.pid)) throw new Error(`Run ${info.name} is not running (status ${info.status}).`);
    if (this.stopsSent.has(info.pid)) throw new Error(`Stop was already requested for run ${info.name}; it is saving a checkpoint.`);
    this.stopsSent.add(info.pid);
    process.kill(info.pid, 'SIGTERM');
  }

  /** Resolves once the resumed trainer has taken the run over (run.json holds its pid). */
  async resume(runDir: string, opts: { steps?: number; checkpoint?: string } = {}): Promise<void> {
    const info = await this.readInfo(runDir);
    if (ACTIVE.has(info.status) && this.isAliveNow(info.pid)) throw new Error(`Run ${info.name} is still running (pid ${info.pid}). Stop it first.`);
    const args = ['resume', resolve(runDir)];
    if (opts.steps !== undefined) args.push('--steps', String(opts.steps));
    if (opts.checkpoint !== undefined) args.push('--checkpoint', resolve(opts.checkpoint));
    const log = join(runDir, LOG_NAME);
    const logStart = fileSize(log);
    const trainer = await this.spawnDetached(args, openSync(log, 'a'));
    const tookOver = async () => (await this.readInfo(runDir).catch(() => undefined))?.pid === trainer.pid;
    await this.waitFor(trainer, log, logStart, tookOver, 'before the run resumed');
  }

  async delete(runDir: string): Promise<void> {
    const dir = resolve(runDir);
    const info = await this.readInfo(dir).catch(() => undefined);
    if (info && ACTIVE.has(info.status) && this.isAliveNow(info.pid)) throw new Error(`Run ${info.name} is still running (pid ${info.pid}). Stop it before deleting it.`);
    if (!info && !(await exists(join(dir, 'metrics.jsonl')))) throw new Error(`${dir} is not a run folder (no run.json or metrics.jsonl); not deleting it.`);
    await rm(dir, { recursive: true, force: true });
  }

  async isAlive(pid: number): Promise<boolean> {
    return this.isAliveNow(pid);
  }

  private isAliveNow(pid: number): boolean {
    return isPidAlive(pid);
  }

  private async readInfo(runDir: string): Promise<RunInfo> {
    const path = join(runDir, 'run.json');
    let value: unknown;
    try {
      value = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      throw new Error(`${path} is missing or unreadable (${(err as Error).message}).`);
    }
    if (!isRunInfo(value)) throw new Error(`${path} is not a steelscope run file.`);
    return value;
  }

  /** A new run folder name (slug + timestamp, -2, -3… if taken) and its pending log, opened exclusively. */
  private reserveRunDir(name: string): { runDir: string; pendingLog: string; fd: number } {
    mkdirSync(this.runsRoot, { recursive: true });
    const base = `${slugify(name)}-${timestamp(new Date())}`;
    for (let n = 1; ; n++) {
      const runDir = join(this.runsRoot, n === 1 ? base : `${base}-${n}`);
      const pendingLog = join(this.runsRoot, `.${basename(runDir)}.${LOG_NAME}`);
      if (existsSync(runDir)) continue;
      try {
        return { runDir, pendingLog, fd: openSync(pendingLog, 'wx') };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }

  /**
   * Starts `node cli.js …` detached: its own process group, stdout and stderr to `logFd` (closed
   * here; the child keeps its copy), unref'd so this process may exit first.
   */
  private async spawnDetached(args: string[], logFd: number): Promise<Trainer> {
    try {
      const child = spawn(this.options.nodePath, [this.options.cliPath, ...args], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
        env: this.options.env ?? process.env,
        cwd: this.runsRoot,
        windowsHide: true,
      });
      let markExited = () => {};
      const trainer: Trainer = { pid: -1, exit: undefined, exited: new Promise((r) => (markExited = r)) };
      child.once('exit', (code, signal) => {
        trainer.exit = code !== null ? `with code ${code}` : `on ${signal}`;
        markExited();
      });
      await new Promise<void>((resolveSpawn, reject) => {
        child.once('spawn', resolveSpawn);
        child.once('error', (err) => reject(new Error(`Could not start ${this.options.nodePath}: ${err.message}. Check steelscope.nodePath.`)));
      });
      child.unref();
      trainer.pid = child.pid ?? -1;
      return trainer;
    } finally {
      closeSync(logFd);
    }
  }

  /** Polls `ready` until true; rejects with the log's last lines if the process exits first. */
  private async waitFor(trainer: Trainer, logPath: string, logStart: number, ready: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    for (;;) {
      if (await ready()) return;
      if (trainer.exit !== undefined || !isPidAlive(trainer.pid)) {
        if (await ready()) return; // it finished in between
        // The pid can be gone a moment before this process hears the exit code.
        await Promise.race([trainer.exited, new Promise((r) => setTimeout(r, 1000))]);
        const tail = lastLines(logPath, logStart);
        throw new Error(`The trainer exited ${trainer.exit ? `${trainer.exit} ` : ''}${what}.${tail ? `\n${tail}` : ''}`);
      }
      if (Date.now() > deadline) throw new Error(`The trainer (pid ${trainer.pid}) did not get going within ${this.startTimeoutMs / 1000} s; see ${logPath}.`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Moves the pending log into the run folder once it exists; removes it if the run never started. */
  private async settleLog(runDir: string, pendingLog: string): Promise<void> {
    try {
      if (await exists(join(runDir, 'run.json'))) await rename(pendingLog, join(runDir, LOG_NAME));
      else if (!(await stat(runDir).catch(() => undefined))) await rm(pendingLog, { force: true });
    } catch {
      // A log that cannot move stays beside the folder; the run itself is unaffected.
    }
  }
}
