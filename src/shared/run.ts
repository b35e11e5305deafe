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
import type { TrainConfig } from './config';

export const RUN_FORMAT = 'steelscope.run/1';
export const CHECKPOINT_FORMAT = 'steelscope.checkpoint/1';

export type RunStatus = 'starting' | 'running' | 'stopping' | 'finished' | 'failed' | 'stopped';

/**
 * The statuses in which run.json says a trainer holds the run: its pid is checked for life, and it
 * must be stopped before the run is resumed or deleted. A run in one of these whose pid is gone is stale.
 */
export const ACTIVE_STATUSES: readonly RunStatus[] = ['starting', 'running', 'stopping'];

export function isActiveStatus(status: RunStatus): boolean {
  return ACTIVE_STATUSES.includes(status);
}

export interface DataFileRecord {
  path: string;
  sha256: string;
  bytes: number;
}

export interface RunInfo {
  format: typeof RUN_FORMAT;
  id: string;
  name: string;
  createdAt: string;
  host: string;
  pid: number;
  status: RunStatus;
  step: number;
  config: TrainConfig;
  /** kernels (wasm): which of our kernels run, on how many threads; written since format 1's second release, so optional. */
  backend: { name: string; skipped: { name: string; reason: string }[]; kernels?: string };
  data: { input: string; files: DataFileRecord[]; shards?: DataFileRecord[] };
  resumes: { at: string; step: number; pid: number; checkpoint: string }[];
  exit: { code: number; reason: string; at: string } | null;
  // Written since the PyTorch engine (optional: older runs lack them). engine: which one trains
  // (TensorFlow.js or PyTorch); device: cpu, cuda, mps (torch) or the tfjs backend's; precision:
  // fp32, bf16 or fp16; world_size: processes (torchrun ranks); gpus: device names.
  engine?: EngineName;
  device?: string;
  precision?: string;
  world_size?: number;
  torch_version?: string;
  gpus?: string[];
}

export const ENGINE_NAMES = ['tfjs', 'torch'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

export type MetricValue = number | 'NaN' | 'Infinity' | '-Infinity';

/** Every record has step and t (Unix ms); any other numeric field is a plottable series. */
export interface MetricRecord {
  step: number;
  t: number;
  kind?: string;
  [series: string]: MetricValue | string | undefined;
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

export type EventKind = 'start' | 'resume' | 'checkpoint' | 'checkpoint-skipped' | 'spike' | 'nan' | 'eval-skipped' | 'stop' | 'finish' | 'crash';
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
  return isObject(value) && Number.isInteger(value.step) && typeof value.t === 'number';
}

export function isSampleRecord(value: unknown): value is SampleRecord {
  return isObject(value) && Number.isInteger(value.step) && typeof value.prompt === 'string' && typeof value.text === 'string';
}

export function isEventRecord(value: unknown): value is EventRecord {
  return isObject(value) && Number.isInteger(value.step) && typeof value.kind === 'string' && typeof value.message === 'string';
}

export function isRunInfo(value: unknown): value is RunInfo {
  return isObject(value) && value.format === RUN_FORMAT && typeof value.id === 'string' && typeof value.status === 'string';
}
