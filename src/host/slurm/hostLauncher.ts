// The launcher of an SSH host that may be a Slurm login node: a start or resume that asks for a
// Slurm job (request.slurm) is submitted with sbatch, any other starts the CLI on the host itself;
// a run whose run.json names a Slurm job is watched and stopped through Slurm, any other by its pid.
import type { ObservedRun } from '../../shared/run';
import type { LaunchedTrainer, Launcher, LaunchRequest } from '../runs/runControl';

export class LoginNodeLauncher implements Launcher {
  constructor(
    private readonly onHost: Launcher,
    private readonly slurm: Launcher,
  ) {}

  launch(request: LaunchRequest): Promise<LaunchedTrainer> {
    return (request.slurm ? this.slurm : this.onHost).launch(request);
  }

  isAlive(info: ObservedRun): Promise<boolean> {
    return this.of(info).isAlive(info);
  }

  terminate(info: ObservedRun, runDir: string): Promise<void> {
    return this.of(info).terminate(info, runDir);
  }

  private of(info: ObservedRun): Launcher {
    return info.slurm_job_id ? this.slurm : this.onHost;
  }
}
