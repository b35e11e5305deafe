// A real one-node Slurm cluster for the tests: scripts/slurm-test-cluster.sh writes its own
// slurm.conf in a scratch folder (this machine's short hostname at 127.0.0.1, 2 CPUs, a `debug`
// partition, free ports) and starts munged (unless one runs), slurmctld and slurmd, no systemd.
// The tests reach it as a login node through the test sshd (test/sshd.ts), whose sessions get
// SLURM_CONF from `SetEnv` (sshdConfig). scripts/install-slurm.sh installs slurm-wlm and munge.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, ROOT, scratch } from './helpers';

const SCRIPT = join(ROOT, 'scripts', 'slurm-test-cluster.sh');

/** Why the Slurm tests cannot run here, or undefined. Under CI a missing Slurm is a failure, not a skip. */
export function slurmSkipReason(): string | undefined {
  let reason: string | undefined;
  if (!['/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/sbin/munged', '/usr/bin/sbatch'].every(existsSync)) {
    reason = 'slurm-wlm or munge is missing (bash scripts/install-slurm.sh)';
  } else if (process.getuid?.() !== 0) {
    reason = 'a test Slurm cluster needs root (slurmd, munged as user munge)';
  }
  if (reason && process.env.CI === 'true') throw new Error(`Slurm tests cannot run under CI: ${reason}.`);
  return reason;
}

export class TestSlurm {
  private constructor(readonly dir: string) {}

  /** The clients' configuration: SLURM_CONF for commands run here and over the test sshd. */
  get conf(): string {
    return join(this.dir, 'slurm.conf');
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, SLURM_CONF: this.conf };
  }

  /** sshd_config lines that give every session this cluster. */
  get sshdConfig(): string[] {
    return [`SetEnv SLURM_CONF=${this.conf}`];
  }

  static async start(): Promise<TestSlurm> {
    // The two ports were free a moment ago; another process may bind one first. Then a daemon's log
    // says "Address already in use" and the cluster is started again on new ports: a choice of
    // port, never a test's assertion, is what is repeated.
    for (let attempt = 1; ; attempt++) {
      const cluster = new TestSlurm(scratch('slurm'));
      const r = spawnSync('bash', [SCRIPT, 'start', cluster.dir, ...(await freePorts(2)).map(String)], {
        encoding: 'utf8',
        timeout: 60_000,
      });
      if (r.status === 0) return cluster;
      cluster.stopDaemons(); // no scancel: it would wait for a slurmctld that may not be there
      if (attempt === 3 || !cluster.portTaken()) {
        throw new Error(`The test Slurm cluster did not start: ${r.stderr || r.stdout}`);
      }
    }
  }

  /** Whether slurmctld or slurmd could not bind its port. */
  private portTaken(): boolean {
    return ['slurmctld.log', 'slurmd.log'].some((log) => {
      const path = join(this.dir, log);
      return existsSync(path) && readFileSync(path, 'utf8').includes('Address already in use');
    });
  }

  /** A client command (squeue, scontrol, scancel…) against this cluster; its stdout, or throws. */
  run(command: string, args: string[]): string {
    const r = spawnSync(command, args, { encoding: 'utf8', env: this.env, timeout: 30_000 });
    if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  stop(): void {
    // Jobs first, so no trainer outlives the cluster.
    spawnSync('scancel', ['--user=root'], { env: this.env, timeout: 30_000 });
    this.stopDaemons();
  }

  private stopDaemons(): void {
    spawnSync('bash', [SCRIPT, 'stop', this.dir], { timeout: 60_000 });
  }
}
