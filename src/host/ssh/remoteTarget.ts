// Runs on an SSH host: one RemoteHost (the connection) shared by the concerns, each in its module:
// deploy.ts (the CLI copied there), launch.ts (detached trainers), remoteFiles.ts (the run folders
// over SFTP), remoteFollower.ts (records streamed by `steelscope follow`), transfer.ts (checkpoint
// downloads), serve.ts (chat). Runs are driven by the same RunControl as on this machine.
import { posix } from 'node:path';
import type { FollowOffsets } from '../../shared/follow-protocol';
import { encodeFollowOffsets } from '../../shared/follow-protocol';
import { parseTorchProbe, pythonCandidates, TORCH_PROBE_SCRIPT, type TorchSearch } from '../../shared/node/python';
import { SHIPPED_SFT_SET, type ObservedRun } from '../../shared/run';
import type { ServeProcess } from '../chat/serveClient';
import type { DeletePlan } from '../runs/deletePlan';
import { TorchProbeCache } from '../runs/torchProbe';
import { RunControl, type Launcher } from '../runs/runControl';
import type { ResumeOptions, RunTarget, StartRequest } from '../runs/types';
import type { SshConnection } from './connection';
import { RemoteCli, type RemoteCliOptions } from './deploy';
import { RemoteNodeCliLauncher } from './launch';
import { remoteRunFiles } from './remoteFiles';
import { RemoteFollower, type ConnectionState, type RemoteFollowerOptions } from './remoteFollower';
import { RemoteHost } from './remoteHost';
import { shCommand } from './quote';
import { serveOnHost } from './serve';
import { execCli } from './cliProcess';
import type { CliProcess } from '../runs/cliProcess';
import { fetchCheckpoint, type FetchProgress } from './transfer';
import { LoginNodeLauncher } from '../slurm/hostLauncher';
import { SlurmLauncher } from '../slurm/launcher';
import { SlurmLoginNode, type SlurmCluster } from '../slurm/loginNode';
import { SlurmJobWatch, type JobSink } from '../slurm/jobWatch';
import { isLiveJobState, viewStateOfJob } from '../slurm/jobState';

export interface RemoteTargetOptions extends RemoteCliOptions {
  /** The host's alias (~/.ssh/config Host, or user@host). */
  alias: string;
  /** Opens a new authenticated connection (config, prompts and known_hosts are its business). */
  connect: () => Promise<SshConnection>;
  /** Runs root on the host (read at each use: a setting). Default `<remoteRoot>/runs`. */
  runsRoot?: string | (() => string | undefined);
  /** How long start()/resume() wait for the trainer. Default 120 s. */
  startTimeoutMs?: number;
  /** What starts trainers there; default the deployed node CLI, or sbatch for a start that asks for a Slurm job. */
  launcher?: (host: RemoteHost, cli: RemoteCli) => Launcher;
  follower?: RemoteFollowerOptions;
}

export class RemoteTarget implements RunTarget {
  readonly id: string;
  readonly label: string;
  readonly host: RemoteHost;
  readonly cli: RemoteCli;
  /** Whether the host is a Slurm login node, and its partitions (probed once per connection). */
  readonly slurm: SlurmLoginNode;
  private readonly slurmJobs: SlurmLauncher;
  private jobWatch: SlurmJobWatch | undefined;
  private readonly control: RunControl;
  private readonly followers = new Set<RemoteFollower>();
  private readonly torch: TorchProbeCache;

  constructor(private readonly options: RemoteTargetOptions) {
    this.id = `ssh:${options.alias}`;
    this.label = options.alias;
    this.host = new RemoteHost(options.alias, options.connect);
    this.cli = new RemoteCli(this.host, options);
    this.slurm = new SlurmLoginNode(this.host);
    this.slurmJobs = new SlurmLauncher(this.host, this.cli);
    // Each interpreter probed over the connection, its arguments quoted; 60 s each at most.
    this.torch = new TorchProbeCache(async (python) => {
      const command = shCommand([python, '-c', TORCH_PROBE_SCRIPT]);
      const r = await (await this.host.connection()).run(command, { timeoutMs: 60_000 });
      return r.code === 0 ? parseTorchProbe(r.stdout) : undefined;
    }, ` on ${options.alias}`);
    this.control = new RunControl({
      files: remoteRunFiles(this.host),
      // The node CLI on the host itself, or a Slurm job where the start asks for one.
      launcher: options.launcher
        ? options.launcher(this.host, this.cli)
        : new LoginNodeLauncher(new RemoteNodeCliLauncher(this.host, this.cli), this.slurmJobs),
      runsRoot: () => this.runsRoot(),
      where: ` on ${options.alias}`,
      startTimeoutMs: options.startTimeoutMs ?? 120_000,
      pollMs: 100,
      aliveCheckEvery: 4, // a pid check is a round trip
    });
  }

  get state(): ConnectionState {
    return this.host.state;
  }

  get lastError(): string | undefined {
    return this.host.lastError;
  }

  onState(listener: (state: ConnectionState) => void): { dispose(): void } {
    return this.host.onState(listener);
  }

  connection(): Promise<SshConnection> {
    return this.host.connection();
  }

  /** Tries again after a refusal (the user fixed known_hosts, or wants to type the password again); wakes the followers. */
  async reconnect(): Promise<SshConnection> {
    const connection = await this.host.reconnect();
    for (const follower of this.followers) follower.reconnect();
    return connection;
  }

  disconnect(): void {
    this.host.disconnect();
  }

  checkNode(): Promise<number> {
    return this.cli.checkNode();
  }

  /** Copies the CLI to `<root>/<version>/` where it differs; resolves with the remote cli.js. */
  deploy(): Promise<string> {
    return this.cli.deploy();
  }

  async runsRoot(): Promise<string> {
    const { runsRoot } = this.options;
    const configured = typeof runsRoot === 'function' ? runsRoot() : runsRoot;
    return configured ? this.host.remotePath(configured) : posix.join(await this.cli.rootDir(), 'runs');
  }

  listRunDirs(): Promise<string[]> {
    return this.control.listRunDirs();
  }

  /** A data path not absolute is in the home folder (as the picker says); the trainer runs in the runs folder. */
  async start(request: StartRequest): Promise<string> {
    const shipped = request.data === 'default' || (request.from !== undefined && request.data === SHIPPED_SFT_SET);
    const data = shipped ? request.data : await this.host.remotePath(request.data);
    const dir = await this.control.start({ ...request, data });
    void this.jobWatch?.poll(true);
    return dir;
  }

  /**
   * A queued job that run.json does not name yet (no run.json, or a resume's new job) has no trainer
   * to checkpoint: it is cancelled here. Any other goes through the run's launcher.
   */
  async stop(runDir: string): Promise<void> {
    const info = await this.control.readInfo(runDir).catch(() => undefined);
    const job = this.jobWatch?.jobOf(runDir, info);
    const unnamed = job !== undefined && job.id !== info?.slurm_job_id;
    if (unnamed && viewStateOfJob(job.state) === 'pending') await this.slurmJobs.cancel(job.id);
    else await this.control.stop(runDir);
    void this.jobWatch?.poll(true);
  }

  async resume(runDir: string, opts: ResumeOptions = {}): Promise<void> {
    await this.control.resume(runDir, opts);
    void this.jobWatch?.poll(true);
  }

  async slurmCluster(): Promise<SlurmCluster | undefined> {
    const state = await this.slurm.probe();
    return state.kind === 'slurm' ? state.cluster : undefined;
  }

  /** Polls the Slurm jobs of this host's runs into `sink` while the host is a Slurm login node. */
  watchJobs(sink: JobSink): { dispose(): void } {
    this.jobWatch?.dispose();
    const watch = new SlurmJobWatch(this.host, sink, () => this.slurm.cluster !== undefined);
    this.jobWatch = watch;
    watch.start();
    return { dispose: () => watch.dispose() };
  }

  planDelete(runDir: string): Promise<DeletePlan> {
    return this.control.planDelete(runDir);
  }

  /** A run whose Slurm job is still queued or running is not deleted: its trainer would write into nothing. */
  async delete(runDir: string): Promise<void> {
    const info = await this.control.readInfo(runDir).catch(() => undefined);
    const job = this.jobWatch?.jobOf(runDir, info);
    if (job && isLiveJobState(job.state)) {
      throw new Error(`Slurm job ${job.id} of ${runDir} is ${job.state}. Stop it before deleting the run.`);
    }
    return this.control.delete(runDir);
  }

  /** How Start Training describes this host: a Slurm login node once probed so. */
  get kind(): string | undefined {
    return this.slurm.cluster ? 'Slurm login node' : undefined;
  }

  isAlive(info: ObservedRun): Promise<boolean> {
    return this.control.isAlive(info);
  }

  readInfo(runDir: string): Promise<ObservedRun> {
    return this.control.readInfo(runDir);
  }

  /** python3 on the host's PATH (a non-interactive shell's), then /usr/bin/python3. */
  findTorch(): Promise<TorchSearch> {
    return this.torch.search(pythonCandidates());
  }

  /** A follower of one run, to hand to RunStore.addRemoteRun. */
  createFollower(runDir: string): RemoteFollower {
    const host = {
      connection: () => this.host.connection(),
      followCommand: (dir: string, from: FollowOffsets) => this.followCommand(dir, from),
    };
    const follower = new RemoteFollower(host, runDir, this.options.follower);
    this.followers.add(follower);
    follower.once('disposed', () => this.followers.delete(follower));
    return follower;
  }

  async followCommand(runDir: string, from: FollowOffsets): Promise<string> {
    return shCommand(await this.cli.command(['follow', runDir, '--from', encodeFollowOffsets(from)]));
  }

  runCli(args: string[]): Promise<CliProcess> {
    return execCli(this.host, this.cli, args);
  }

  serve(checkpoint: string): Promise<ServeProcess> {
    return serveOnHost(this.host, this.cli, checkpoint);
  }

  fetchCheckpoint(
    runDir: string,
    step: number,
    localDir: string,
    onProgress?: (p: FetchProgress) => void,
  ): Promise<string> {
    return fetchCheckpoint(this.host, runDir, step, localDir, onProgress);
  }

  installGpuBackend(): Promise<string> {
    return this.cli.installGpuBackend();
  }
}
