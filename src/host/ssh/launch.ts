// Trainers on an SSH host: the deployed node CLI started detached (setsid nohup, stdio appended
// to the log, so it outlives the connection and the editor), its pid printed back over the
// channel; checked with kill -0, and signalled only once the host's /proc shows it is the run's trainer. The Launcher of RemoteTarget; an sbatch or torchrun
// launcher would stand beside it.
import { posix } from 'node:path';
import { judgeTrainer, parseProcFacts, procFactsScript, type TrainerCheck } from '../../shared/node/ourProcess';
import type { ObservedRun } from '../../shared/run';
import type { LaunchedTrainer, Launcher, LaunchRequest } from '../runs/runControl';
import type { RemoteCli } from './deploy';
import { shCommand, shQuote } from './quote';
import type { RemoteHost } from './remoteHost';

/** The inner script of a detached start: prints its own pid (the trainer's, after exec) on fd 3 = the channel. */
const DETACH_SCRIPT = 'echo $$ >&3; exec "$@" 3>&-';

/** The shell line that starts `program` detached in `cwd`, output appended to `log`, printing its pid. */
export function detachedCommand(cwd: string, program: string[], log: string): string {
  const inner = shCommand(['sh', '-c', DETACH_SCRIPT, 'steelscope-trainer', ...program]);
  return (
    `cd ${shQuote(cwd)} || exit 1; if command -v setsid >/dev/null 2>&1; then S=setsid; else S=; fi; ` +
    `$S nohup ${inner} 3>&1 >> ${shQuote(log)} 2>&1 < /dev/null &`
  );
}

export class RemoteNodeCliLauncher implements Launcher {
  constructor(
    private readonly host: RemoteHost,
    private readonly cli: RemoteCli,
  ) {}

  async launch(request: LaunchRequest): Promise<LaunchedTrainer> {
    const program = await this.cli.command(request.args);
    const out = await this.host.sh(detachedCommand(request.cwd, program, request.log), 'Starting the trainer', 30_000);
    const pid = Number(out.trim().split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0)
      throw new Error(`Starting the trainer on ${this.host.label} printed no pid: ${out.trim()}`);
    // The exit code went to the detached shell, not to this side.
    return { pid, running: () => this.isPidAlive(pid), exitNote: async () => '' };
  }

  isAlive(info: ObservedRun): Promise<boolean> {
    return this.isPidAlive(info.pid);
  }

  private async isPidAlive(pid: number): Promise<boolean> {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    const r = await (
      await this.host.connection()
    ).run(`kill -0 ${shQuote(String(pid))} 2>/dev/null`, { timeoutMs: 30_000 });
    return r.code === 0;
  }

  /** Signals only a process the host's /proc shows to be the run's trainer (src/shared/node/ourProcess.ts). */
  async terminate(info: ObservedRun, runDir: string): Promise<void> {
    const check = await this.checkTrainer(info, runDir);
    if (!check.ours)
      throw new Error(`Not stopping run ${info.name} on ${this.host.label}: ${check.why}. Nothing was signalled.`);
    await this.host.sh(`kill -TERM ${shQuote(String(info.pid))}`, `Stopping run ${info.name}`);
  }

  private async checkTrainer(info: ObservedRun, runDir: string): Promise<TrainerCheck> {
    if (!Number.isInteger(info.pid) || info.pid <= 0)
      return { ours: false, why: `run.json names no valid pid (${info.pid})` };
    const r = await (await this.host.connection()).run(procFactsScript(info.pid), { timeoutMs: 30_000 });
    const facts = r.code === 0 ? parseProcFacts(r.stdout) : undefined;
    if (facts) return judgeTrainer(info, runDir, facts, (a, b) => posix.resolve(a) === posix.resolve(b));
    const why =
      r.code === 3 ? `no /proc/${info.pid}` : `its /proc entry could not be read (exit ${r.code ?? r.signal})`;
    return { ours: false, why: `process ${info.pid} cannot be inspected there (${why})` };
  }
}
