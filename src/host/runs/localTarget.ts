// Runs on this machine: a RunControl over node:fs and the detached node-CLI launcher. Everything
// else is read back from the run directory.
import { execFile } from 'node:child_process';
import { access, mkdir, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { parseTorchProbe, pythonCandidates, TORCH_PROBE_SCRIPT, type TorchProbe, type TorchSearch } from '../../shared/node/python';
import type { ObservedRun } from '../../shared/run';
import type { DeletePlan } from './deletePlan';
import { NodeCliLauncher, type NodeCliLauncherOptions } from './localLauncher';
import { RunControl, type Launcher, type RunFiles } from './runControl';
import { spawnCli, type CliProcess } from './cliProcess';
import { TorchProbeCache } from './torchProbe';
import type { ResumeOptions, RunTarget, StartRequest } from './types';

export interface LocalTargetOptions extends NodeCliLauncherOptions {
  /** Folder that new runs are created in. */
  runsRoot: string;
  /** How long start() waits for run.json (or resume() for its pid) before giving up. Default 120 s. */
  startTimeoutMs?: number;
  /** What starts trainers; default the node CLI at nodePath/cliPath. */
  launcher?: Launcher;
  id?: string;
  label?: string;
  /** The python3 the user named for the PyTorch engine (steelscope.pythonPath); undefined: search. */
  pythonPath?: () => string | undefined;
}

/** How long one interpreter may take to import torch and answer. */
const PROBE_TIMEOUT_MS = 60_000;

/** Runs the torch probe with `python` on this machine; undefined when it cannot be run. */
function probeHere(python: string): Promise<TorchProbe | undefined> {
  return new Promise((resolveProbe) => {
    execFile(python, ['-c', TORCH_PROBE_SCRIPT], { timeout: PROBE_TIMEOUT_MS, windowsHide: true }, (err, stdout) =>
      resolveProbe(err ? undefined : parseTorchProbe(stdout)),
    );
  });
}

/** RunFiles over this machine's file system. */
export const localRunFiles: RunFiles = {
  paths: path,
  exists: (path) =>
    access(path).then(
      () => true,
      () => false,
    ),
  size: (path) =>
    stat(path).then(
      (s) => s.size,
      () => 0,
    ),
  read: (path) => readFile(path),
  subfolders: async (dir) => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  },
  mkdirs: async (dir) => void (await mkdir(dir, { recursive: true })),
  createExclusive: async (path) => {
    try {
      await (await open(path, 'wx')).close();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  },
  rename,
  removeFile: (path) => rm(path, { force: true }),
  removeFolder: (dir) => rm(dir, { recursive: true, force: true }),
  realpath: (p) => realpath(p).catch(() => path.resolve(p)),
};

export class LocalTarget implements RunTarget {
  readonly id: string;
  readonly label: string;
  readonly runsRoot: string;
  private readonly control: RunControl;
  private readonly torch = new TorchProbeCache(probeHere, '');

  constructor(private readonly options: LocalTargetOptions) {
    this.id = options.id ?? 'local';
    this.label = options.label ?? 'This machine';
    this.runsRoot = path.resolve(options.runsRoot);
    this.control = new RunControl({
      files: localRunFiles,
      launcher: options.launcher ?? new NodeCliLauncher(options),
      runsRoot: async () => this.runsRoot,
      where: '',
      startTimeoutMs: options.startTimeoutMs ?? 120_000,
      pollMs: 50,
      aliveCheckEvery: 1,
    });
  }

  listRunDirs(): Promise<string[]> {
    return this.control.listRunDirs();
  }

  start(request: StartRequest): Promise<string> {
    return this.control.start(request);
  }

  /** Signals only a verifiably own trainer (NodeCliLauncher.terminate); else says why not. */
  stop(runDir: string): Promise<void> {
    return this.control.stop(path.resolve(runDir));
  }

  resume(runDir: string, opts: ResumeOptions = {}): Promise<void> {
    const checkpoint = opts.checkpoint === undefined ? undefined : path.resolve(opts.checkpoint);
    return this.control.resume(path.resolve(runDir), { ...opts, checkpoint });
  }

  planDelete(runDir: string): Promise<DeletePlan> {
    return this.control.planDelete(path.resolve(runDir));
  }

  delete(runDir: string): Promise<void> {
    return this.control.delete(path.resolve(runDir));
  }

  readInfo(runDir: string): Promise<ObservedRun> {
    return this.control.readInfo(path.resolve(runDir));
  }

  isAlive(info: ObservedRun): Promise<boolean> {
    return this.control.isAlive(info);
  }

  findTorch(): Promise<TorchSearch> {
    return this.torch.search(pythonCandidates(this.options.pythonPath?.()));
  }

  async runCli(args: string[], what: string): Promise<CliProcess> {
    return spawnCli(this.options, args, what);
  }
}
