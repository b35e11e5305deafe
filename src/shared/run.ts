// The run directory, format 1: the one contract between any trainer and the observer.
// Types of every file, and the readers every consumer uses (CLI, extension host, tests).
//
//   run.json          RunInfo, rewritten atomically
//   metrics.jsonl     MetricRecord per line (append-only)
//   samples.jsonl     SampleRecord per line
//   events.jsonl      EventRecord per line
//   checkpoints/step-NNNNNNNN/   manifest.json, weights.*, optimizer.*, tokenizer.json, DONE (checkpoint.ts)
//
// JSON has no NaN or Infinity; a non-finite metric is written as the string "NaN",
// "Infinity" or "-Infinity" so an observer can show it instead of dropping it (Python's bare
// tokens are read as those strings: src/shared/jsonl.ts). Lines are read by src/shared/jsonl.ts.
import * as v from 'valibot';
import { TrainConfigSchema } from './config';
import { arr, int, nonNegativeInt, oneOf, openObj, parseAs, str, type Output, type Parsed } from './schema';

export const RUN_FORMAT = 'steelscope.run/1';
export const CHECKPOINT_FORMAT = 'steelscope.checkpoint/1';

/** pending: a Slurm job submitted for the run waits in the queue; its trainer has not started (pendingRunInfo). */
export const RUN_STATUSES = ['pending', 'starting', 'running', 'stopping', 'finished', 'failed', 'stopped'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * The statuses in which run.json says a trainer holds the run: its pid is checked for life, and it
 * must be stopped before the run is resumed or deleted; the status bar shows the newest such run. A
 * run in one of these whose pid is gone is stale.
 */
export const ACTIVE_STATUSES: readonly RunStatus[] = ['pending', 'starting', 'running', 'stopping'];

const ACTIVE = new Set<string>(ACTIVE_STATUSES);

/** Takes any status text (the Runs view's stale and unknown too): true only for an active RunStatus. */
export function isActiveStatus(status: string): boolean {
  return ACTIVE.has(status);
}

/** `--data poetry-sft`: the instruction set the build derives from the corpus (scripts/build-sft-set.mjs). */
export const SHIPPED_SFT_SET = 'poetry-sft';

/**
 * The trainer CLI's exit status after SIGUSR1 (Slurm's "time limit near" or a preemption's notice):
 * it saved a checkpoint and stopped so that its job be requeued (EX_TEMPFAIL: try again later).
 * The batch script requeues the job on it (src/host/slurm/batchScript.ts).
 */
export const REQUEUE_EXIT_CODE = 75;

export const ENGINE_NAMES = ['tfjs', 'torch'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/**
 * A data file: where it was, its sha256 and size. `bundled` names a dataset that ships in dist/ (`default`,
 * `poetry-sft`): a resume finds it in the install at hand, since an update moves dist/ (added later, so optional).
 */
const DataFileSchema = v.object({ path: str, sha256: str, bytes: nonNegativeInt, bundled: v.optional(str) });
export type DataFileRecord = Output<typeof DataFileSchema>;

/** What makes a run.json a run: without these (or with a bad one) it is not read at all. */
const RUN_IDENTITY = {
  format: v.literal(RUN_FORMAT, `expected "${RUN_FORMAT}"`),
  id: str,
  status: oneOf(RUN_STATUSES),
  /** The trainer's process; a run is signalled only through it, so it is never guessed. */
  pid: v.pipe(int, v.minValue(1, 'expected a positive integer')),
};

/** Shown in lists and tooltips; a bad one is replaced by a default and reported (observeRunInfo). */
const RUN_DISPLAY = { name: str, createdAt: str, host: str, step: nonNegativeInt };

/** What the trainer needs to resume; an observer does without a bad one (reported). */
const RUN_DETAILS = {
  config: TrainConfigSchema,
  /** kernels (wasm): which of our kernels run, on how many threads; since format 1's second release, so optional. */
  backend: v.object({ name: str, skipped: arr(v.object({ name: str, reason: str })), kernels: v.optional(str) }),
  data: v.object({ input: str, files: arr(DataFileSchema), shards: v.optional(arr(DataFileSchema)) }),
  resumes: arr(v.object({ at: str, step: nonNegativeInt, pid: int, checkpoint: str })),
  exit: v.nullable(v.object({ code: int, reason: str, at: str })),
};

/**
 * Written since the PyTorch engine (optional: older runs lack them). engine: which one trains
 * (TensorFlow.js or PyTorch); device: cpu, cuda, mps (torch) or the tfjs backend's; precision:
 * fp32, bf16 or fp16; world_size: processes (torchrun ranks); gpus: device names.
 */
const RUN_ENGINE = {
  engine: v.optional(oneOf(ENGINE_NAMES)),
  device: v.optional(str),
  precision: v.optional(str),
  world_size: v.optional(v.pipe(int, v.minValue(1, 'expected a positive integer'))),
  torch_version: v.optional(str),
  gpus: v.optional(arr(str)),
  /** The Slurm job the trainer runs in (SLURM_JOB_ID), when it runs in one: how a Slurm launcher finds it. */
  slurm_job_id: v.optional(str),
  /** A fine-tuning run (`steelscope sft`): the checkpoint folder it started from, and its run id and step. */
  base_checkpoint: v.optional(v.object({ path: str, run_id: v.optional(str), step: nonNegativeInt })),
  /** How the run's data is rendered: absent for plain text; "chatml" for a fine-tuning run's conversations. */
  template: v.optional(oneOf(['chatml'] as const)),
};

/**
 * run.json as our trainers write it. Open: other writers (the PyTorch engine) add fields of their
 * own, which are kept when the file is rewritten (by a resume, say).
 */
export const RunInfoSchema = openObj({ ...RUN_IDENTITY, ...RUN_DISPLAY, ...RUN_DETAILS, ...RUN_ENGINE });
export type RunInfo = Output<typeof RunInfoSchema>;

/** run.json as an observer holds it: defaults for bad display fields, details only where readable. */
export const ObservedRunSchema = openObj({
  ...RUN_IDENTITY,
  ...RUN_DISPLAY,
  ...v.partial(v.object(RUN_DETAILS)).entries,
  ...RUN_ENGINE,
});
export type ObservedRun = Output<typeof ObservedRunSchema>;

/**
 * How a run computes, for the Runs view tooltip and the dashboard legend: "PyTorch · cuda · bf16 ·
 * 8 processes"; undefined for a run.json without the engine fields (older runs, foreign writers).
 */
export function describeEngine(
  run: Pick<ObservedRun, 'engine' | 'device' | 'precision' | 'world_size'>,
): string | undefined {
  if (run.engine === undefined && run.device === undefined) return undefined;
  const parts = [run.engine === 'torch' ? 'PyTorch' : run.engine === 'tfjs' ? 'TensorFlow.js' : 'engine unknown'];
  if (run.device !== undefined) parts.push(run.device);
  if (run.precision !== undefined) parts.push(run.precision);
  if (run.world_size !== undefined) parts.push(`${run.world_size} process${run.world_size === 1 ? '' : 'es'}`);
  return parts.join(' · ');
}

/** The whole run.json, every field checked: what a trainer needs to resume a run. */
export function parseRunInfo(value: unknown, root = 'run.json'): Parsed<RunInfo> {
  return parseAs(RunInfoSchema, value, root);
}

/** What a Slurm launcher knows of a run it has just submitted (pendingRunInfo). */
export interface PendingRun {
  id: string;
  name: string;
  createdAt: string;
  /** The login node the job was submitted from. */
  host: string;
  /** The job id sbatch printed. */
  jobId: string;
}

/**
 * The run.json of a run whose Slurm job waits in the queue: written by the launcher right after
 * submission, so the Runs view lists the run (pending, with its job) before any trainer runs. Its
 * pid is the job id: a Slurm launcher finds the job by slurm_job_id and never signals a pid. The
 * trainer the job starts takes the folder over (isPendingRunOf) and rewrites run.json whole.
 */
export function pendingRunInfo(run: PendingRun): ObservedRun {
  const { jobId, ...display } = run;
  return { format: RUN_FORMAT, ...display, pid: Number(jobId), status: 'pending', step: 0, slurm_job_id: jobId };
}

/** Is `value` (a parsed run.json) the pending placeholder of Slurm job `jobId`? */
export function isPendingRunOf(value: unknown, jobId: string | undefined): boolean {
  return (
    jobId !== undefined &&
    jobId !== '' &&
    isRecord(value) &&
    value.format === RUN_FORMAT &&
    value.status === 'pending' &&
    value.slurm_job_id === jobId
  );
}

export type Observed = { ok: true; run: ObservedRun; problems: string[] } | { ok: false; error: string };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * run.json for the Runs view, the dashboard and `follow`: validated and normalised once, when read.
 * A bad display field gets a default (name: the id; step: 0; others: empty) and a bad detail is
 * left out, each reported in `problems` ("run.json: name: expected a string; shown as …"), so one
 * careless writer costs that run a note, never the list or a compared dashboard. Without a valid
 * format, id, status and pid it is not a run (`error`).
 */
export function observeRunInfo(value: unknown): Observed {
  const identity = parseAs(v.looseObject(RUN_IDENTITY, 'expected an object'), value, 'run.json');
  if (!identity.ok || !isRecord(value))
    return { ok: false, error: identity.ok ? 'run.json: expected an object' : identity.error };
  const fixed: Record<string, unknown> = { ...value };
  const problems: string[] = [];
  const defaults = new Map<string, unknown>([
    ['name', identity.value.id],
    ['createdAt', ''],
    ['host', ''],
    ['step', 0],
  ]);
  for (const [key, schema] of Object.entries<v.GenericSchema>({ ...RUN_DISPLAY, ...RUN_DETAILS, ...RUN_ENGINE })) {
    const fallback = defaults.get(key);
    if (fallback === undefined && value[key] === undefined) continue; // a detail a foreign writer does not write
    const field = parseAs(schema, value[key], `run.json: ${key}`);
    if (field.ok) continue;
    if (fallback === undefined) delete fixed[key];
    else fixed[key] = fallback;
    problems.push(`${field.error}; ${fallback === undefined ? 'left out' : `shown as ${JSON.stringify(fallback)}`}.`);
  }
  const run = parseAs(ObservedRunSchema, fixed, 'run.json');
  return run.ok ? { ok: true, run: run.value, problems } : run;
}

export type MetricValue = number | 'NaN' | 'Infinity' | '-Infinity';

/**
 * A record needs only an integer `step`. Ours also carry `t` (Unix ms) and `kind`; a foreign
 * writer's may keep its time in another field, in seconds, and nest objects: what a record means
 * as time and series is read by src/shared/metricFields.ts.
 */
export interface MetricRecord {
  step: number;
  t?: unknown;
  kind?: unknown;
  [field: string]: unknown;
}

export interface SampleRecord {
  step: number;
  t: number;
  prompt: string;
  text: string;
  temperature: number;
  top_k: number;
  top_p: number;
  seed: number;
}

export type EventKind =
  | 'start'
  | 'resume'
  | 'checkpoint'
  | 'checkpoint-skipped'
  | 'spike'
  | 'nan'
  | 'eval-skipped'
  | 'stop'
  | 'finish'
  | 'crash';
export type EventLevel = 'info' | 'warning' | 'error';

export interface EventRecord {
  step: number;
  t: number;
  kind: EventKind;
  level: EventLevel;
  message: string;
  [detail: string]: unknown;
}

export function encodeMetric(value: number): MetricValue {
  if (Number.isFinite(value)) return value;
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? 'Infinity' : '-Infinity';
}

export function decodeMetric(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (value === 'NaN') return NaN;
  if (value === 'Infinity') return Infinity;
  if (value === '-Infinity') return -Infinity;
  return undefined;
}

export function checkpointDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

export function parseCheckpointDirName(name: string): number | undefined {
  const m = /^step-(\d{8,})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isMetricRecord(value: unknown): value is MetricRecord {
  return isObject(value) && Number.isInteger(value.step);
}

export function isSampleRecord(value: unknown): value is SampleRecord {
  return (
    isObject(value) &&
    Number.isInteger(value.step) &&
    typeof value.prompt === 'string' &&
    typeof value.text === 'string'
  );
}

export function isEventRecord(value: unknown): value is EventRecord {
  return (
    isObject(value) &&
    Number.isInteger(value.step) &&
    typeof value.kind === 'string' &&
    typeof value.message === 'string'
  );
}
