// Trainers on this machine: `node dist/cli.js train|resume …` started DETACHED (their own process
// group, stdio to a log file, unref'd), so they outlive the extension host, a window reload or
// the editor closing. The Launcher of LocalTarget.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { checkOurTrainer } from '../../shared/node/ourProcess';
import { isPidAlive } from '../../shared/node/pid';
import type { ObservedRun } from '../../shared/run';
import type { LaunchedTrainer, Launcher, LaunchRequest } from './runControl';

export interface NodeCliLauncherOptions {
  /** The node binary for trainers (settings.ts: trainerNodePath); never Electron's. */
  nodePath: string;
  /** The bundled dist/cli.js. */
  cliPath: string;
  /** Environment of trainers; default process.env. */
  env?: NodeJS.ProcessEnv;
}

export class NodeCliLauncher implements Launcher {
  /** Trainers this launcher started that have not exited: known to be ours without /proc. */
  private readonly children = new Set<number>();

  constructor(private readonly options: NodeCliLauncherOptions) {}

  /**
   * Starts `node cli.js …` detached: its own process group, stdout and stderr appended to the log
   * (this side's descriptor is closed; the child keeps its copy), unref'd so this process may exit first.
   */
  async launch(request: LaunchRequest): Promise<LaunchedTrainer> {
    const { nodePath, cliPath, env } = this.options;
    const logFd = openSync(request.log, 'a');
    try {
      const child = spawn(nodePath, [cliPath, ...request.args], {
        detached: true,
        stdio: ['ignore', logFd, logFd],
        env: env ?? process.env,
        cwd: request.cwd,
        windowsHide: true,
      });
      let exit: string | undefined;
      const exited = new Promise<void>((resolveExit) =>
        child.once('exit', (code, signal) => {
          exit = code !== null ? `with code ${code}` : `on ${signal}`;
          resolveExit();
        }),
      );
      await new Promise<void>((resolveSpawn, reject) => {
        child.once('spawn', resolveSpawn);
        child.once('error', (err) =>
          reject(new Error(`Could not start ${nodePath}: ${err.message}. Check steelscope.nodePath.`)),
        );
      });
      child.unref();
      const pid = child.pid ?? -1;
      this.children.add(pid);
      void exited.then(() => this.children.delete(pid));
      return {
        pid,
        running: async () => exit === undefined && isPidAlive(pid),
        exitNote: async () => {
          // The pid can be gone a moment before this process hears the exit code.
          await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
          return exit ?? '';
        },
      };
    } finally {
      closeSync(logFd);
    }
  }

  async isAlive(info: ObservedRun): Promise<boolean> {
    return isPidAlive(info.pid);
  }

  /** Signals only a verifiably own trainer: a child of this launcher, else one /proc vouches for (ourProcess.ts). */
  async terminate(info: ObservedRun, runDir: string): Promise<void> {
    if (!this.children.has(info.pid)) {
      const check = checkOurTrainer(info, runDir);
      if (!check.ours) throw new Error(`Not stopping run ${info.name}: ${check.why}. Nothing was signalled.`);
    }
    process.kill(info.pid, 'SIGTERM');
  }
}
