// What the extension host knows about runs, independent of where they live (this machine now,
// SSH hosts later) and of how they are shown (tree, dashboard, status bar). No `vscode` here:
// the store and the targets are plain Node, unit-testable; views adapt them.
import type { TrainConfig } from '../../shared/config';
import type { CheckpointSummary } from '../../shared/node/checkpoints';
import type { TorchSearch } from '../../shared/node/python';
import type { DeletePlan } from './deletePlan';
import type { SlurmJobOptions } from '../slurm/batchScript';
import type { SlurmJob } from '../slurm/jobState';
import type { SlurmCluster } from '../slurm/loginNode';
import type { EngineName, EventRecord, ObservedRun, RunStatus, SampleRecord } from '../../shared/run';
import type { EvalRecord } from '../../shared/eval';
import type { CliProcess } from './cliProcess';

/** Unique across hosts: `${hostId}::${absolute run dir}`. */
export type RunKey = string;

/**
 * run.json's status, or `stale`: the pid is gone but run.json never got a final status; `pending`:
 * its Slurm job waits in the queue.
 */
export type RunDisplayStatus = RunStatus | 'stale' | 'unknown' | 'pending';

export type { CheckpointSummary } from '../../shared/node/checkpoints';

export interface RunSummary {
  key: RunKey;
  hostId: string;
  hostLabel: string;
  dir: string;
  /** run.json's name, or the folder name for a foreign run without run.json. */
  name: string;
  status: RunDisplayStatus;
  info?: ObservedRun;
  /** What is wrong with this run's run.json (one line each), shown on the run; absent or empty when nothing. */
  problems?: readonly string[];
  config?: TrainConfig;
  lastStep?: number;
  lastLoss?: number;
  lastTokPerS?: number;
  checkpoints: CheckpointSummary[];
  /** The run's Slurm job as last polled (on a login node), which its status follows while queued or ended. */
  job?: SlurmJob;
  /** Lines skipped per file; system.jsonl's and evals.jsonl's since they are read (optional in older summaries). */
  malformed: { metrics: number; samples: number; events: number; system?: number; evals?: number };
}

/**
 * Full-resolution series of one run, column-wise so a million steps stay compact.
 * Rows of one `kind` (train, eval, or a foreign writer's kind; records without kind go to
 * `train`). A record whose step is not after the last row of its kind (a resumed run
 * repeating steps) first truncates that kind back to before its step: the later record wins.
 */
export interface SeriesTable {
  kind: string;
  step: Float64Array;
  t: Float64Array;
  /**
   * Numeric fields by name (loss, lr, grad_norm, tokens, …); ±Infinity kept as such. NaN is
   * either logged (a row in loggedNaN: drawn as a marker) or the field is missing from that
   * record (a gap in the chart, an empty CSV cell).
   */
  fields: Map<string, Float64Array>;
  /** Per field, the rows whose record logged NaN for it. */
  loggedNaN: Map<string, Set<number>>;
  length: number;
}

export interface RunData {
  summary: RunSummary;
  tables: Map<string, SeriesTable>;
  samples: readonly SampleRecord[];
  events: readonly EventRecord[];
  /** evals.jsonl's records in file order (src/shared/eval.ts): one per subject and a macro average per task and step. */
  evals: readonly EvalRecord[];
}

/** What changed since the last notification for one run (for throttled, numbered deltas). */
export interface RunChange {
  key: RunKey;
  summaryChanged: boolean;
  /** Per kind, the first row index that is new or was rewritten. */
  tablesFrom: Map<string, number>;
  samplesFrom?: number;
  eventsFrom?: number;
  evalsFrom?: number;
  /** The run is no longer observed (RunStore.removeRun): drop it. */
  removed?: boolean;
}

export interface Disposable {
  dispose(): void;
}

export interface StartRequest {
  name?: string;
  preset: string;
  /** `default` or a path on the target. */
  data: string;
  steps: number;
  sets?: string[];
  /** The engine; default the CLI's (tfjs). */
  engine?: EngineOptions;
  /** On a Slurm login node: the job to ask for (partition, nodes, GPUs, time…). */
  slurm?: SlurmJobOptions;
  /**
   * A checkpoint folder on the target: the run fine-tunes it (`steelscope sft --from`) on `data`, a
   * chat JSONL file or poetry-sft, keeping its model config; `preset` then only names the folder.
   */
  from?: string;
  /**
   * 'started' (default): resolve once the trainer has taken the run. 'submitted': once the launcher
   * has handed it on (a Slurm job in the queue, which may wait for hours for its nodes).
   */
  waitUntil?: 'started' | 'submitted';
}

/** The PyTorch engine (src/engines/torch): torchrun with `nproc` processes, Python at `python`. */
export interface EngineOptions {
  name: EngineName;
  nproc?: number | 'auto';
  python?: string;
}

export interface ResumeOptions {
  /** Train until this step. */
  steps?: number;
  /** A checkpoint folder of the run; default its newest valid one. */
  checkpoint?: string;
  /** The engine; default the one that wrote the run. */
  engine?: EngineOptions;
  /** On a Slurm login node: the job to ask for; default the one the host remembers. */
  slurm?: SlurmJobOptions;
  /** As StartRequest's: 'submitted' resolves once the job is queued. */
  waitUntil?: 'started' | 'submitted';
}

/**
 * Where runs live and how they are driven: this machine (LocalTarget) or an SSH host
 * (RemoteTarget). Both are a RunControl over the target's files and its Launcher (runControl.ts).
 */
export interface RunTarget {
  readonly id: string;
  readonly label: string;
  /** Run folders found under the target's runs root. */
  listRunDirs(): Promise<string[]>;
  /** Starts a detached trainer; resolves with its run dir once run.json exists. */
  start(request: StartRequest): Promise<string>;
  /** SIGTERM to the trainer (it checkpoints and exits). */
  stop(runDir: string): Promise<void>;
  /** Detached `steelscope resume`; from the newest valid checkpoint unless `checkpoint` names one. */
  resume(runDir: string, opts?: ResumeOptions): Promise<void>;
  /** What Delete Run may do with this folder (src/host/runs/deletePlan.ts), from real paths. */
  planDelete(runDir: string): Promise<DeletePlan>;
  /** Removes a run folder of this target's runs root; refuses any other folder (planDelete). */
  delete(runDir: string): Promise<void>;
  /** Is the trainer that run.json names alive on the target? */
  isAlive(info: ObservedRun): Promise<boolean>;
  /** The target's Python with PyTorch and what it sees (cached while found), or what to install. */
  findTorch(): Promise<TorchSearch>;
  /** What kind of host it is, where it is more than its connection ("Slurm login node"). */
  readonly kind?: string;
  /** The cluster when the target is a Slurm login node (probed once per connection); undefined elsewhere. */
  slurmCluster?(): Promise<SlurmCluster | undefined>;
  /** Runs `steelscope <args>` there, attached, its output streamed (`eval`); `what` names it in errors. */
  runCli(args: string[], what: string): Promise<CliProcess>;
}

export interface RunStoreApi {
  readonly runs: ReadonlyMap<RunKey, RunData>;
  onDidChange(listener: (change: RunChange) => void): Disposable;
  get(key: RunKey): RunData | undefined;
}
