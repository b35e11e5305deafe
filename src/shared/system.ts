// system.jsonl, an optional file of the run directory (format 1): what the machine was doing while
// the run trained, written by both engines every 10 s and once at start (src/core/train/system.ts,
// src/engines/torch/system.py). One flat JSON object per line, so every JSONL reader plots it as is:
//
//   {"t": 1700000000000, "step": 120, "cpu_pct": 187.5, "rss_gb": 1.234,
//    "host_mem_used_gb": 12.3, "host_mem_total_gb": 64.0,
//    "gpu0/name": "NVIDIA H100 80GB HBM3", "gpu0/util_pct": 87, "gpu0/mem_used_gb": 64.2,
//    "gpu0/mem_total_gb": 85.5, "gpu0/power_w": 512.3, "gpu0/temp_c": 64, "gpu1/…": …}
//
// t: Unix ms (required); step: the last step trained when sampled (optional: a foreign writer may
// leave it out; the dashboard maps a record to the step nearest in time anyway); cpu_pct: this
// process's CPU time over wall time since the previous record (100 = one core busy); *_gb: 1e9
// bytes; gpuN/*: one group per GPU from nvidia-smi, N its index. A value that is not available
// (nvidia-smi's "[N/A]", "[Not Supported]") is left out: a gap in its chart, never a zero.

export const SYSTEM_FILE = 'system.jsonl';
/** The series table (and chart prefix) its records go to, beside the metrics' train and eval. */
export const SYSTEM_KIND = 'system';
/** How often the engines sample (ms). */
export const SYSTEM_INTERVAL_MS = 10_000;

/** The query both engines run; its columns, in this order, are what parseNvidiaSmiCsv reads. */
export const NVIDIA_SMI_ARGS = [
  '--query-gpu=index,name,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu',
  '--format=csv,noheader,nounits',
];

export interface GpuSample {
  index: number;
  name: string;
  util_pct?: number;
  mem_used_gb?: number;
  mem_total_gb?: number;
  power_w?: number;
  temp_c?: number;
}

export interface SystemRecord {
  t: number;
  step?: number;
  [field: string]: number | string | undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** A record of system.jsonl: an object with a numeric t (step, when present, an integer). */
export function isSystemRecord(value: unknown): value is SystemRecord {
  return (
    isObject(value) &&
    typeof value.t === 'number' &&
    Number.isFinite(value.t) &&
    (value.step === undefined || Number.isInteger(value.step))
  );
}

const MIB_TO_GB = (1024 * 1024) / 1e9;

/** A cell as a number; "[N/A]", "[Not Supported]", "[Unknown Error]" and anything else not a number: undefined. */
function numberCell(cell: string): number | undefined {
  const text = cell.trim();
  if (!/^-?\d+(\.\d+)?$/.test(text)) return undefined;
  return Number(text);
}

const round = (value: number | undefined, digits: number) =>
  value === undefined ? undefined : Number(value.toFixed(digits));

/**
 * The rows of `nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total,
 * power.draw,temperature.gpu --format=csv,noheader,nounits` ("0, NVIDIA A100-SXM4-80GB, 0, 4,
 * 81920, [N/A], 31"). Hand-written rather than a CSV library: nvidia-smi does not quote a cell, so
 * the index is read from the front and the five numbers from the end, and whatever lies between is
 * the name (even with a comma in it). Lines that are no such row (an error message, a blank line)
 * are skipped. Memory comes in MiB and is given in GB (1e9 bytes), like the other *_gb fields.
 */
export function parseNvidiaSmiCsv(text: string): GpuSample[] {
  const gpus: GpuSample[] = [];
  for (const line of text.split(/\r?\n/)) {
    const cells = line.split(',');
    if (cells.length < 7) continue;
    const index = numberCell(cells[0]);
    if (index === undefined || !Number.isInteger(index) || index < 0) continue;
    const [util, used, total, power, temp] = cells.slice(-5).map(numberCell);
    const gpu: GpuSample = { index, name: cells.slice(1, -5).join(',').trim() };
    const fields: [keyof GpuSample, number | undefined][] = [
      ['util_pct', util],
      ['mem_used_gb', round(used === undefined ? undefined : used * MIB_TO_GB, 3)],
      ['mem_total_gb', round(total === undefined ? undefined : total * MIB_TO_GB, 3)],
      ['power_w', power],
      ['temp_c', temp],
    ];
    for (const [key, value] of fields) if (value !== undefined) Object.assign(gpu, { [key]: value });
    gpus.push(gpu);
  }
  return gpus;
}

/** The flat fields of system.jsonl for these GPUs: `gpu<index>/<field>`. */
export function gpuFields(gpus: readonly GpuSample[]): Record<string, number | string> {
  const fields: Record<string, number | string> = {};
  for (const { index, ...values } of gpus) {
    for (const [key, value] of Object.entries(values)) if (value !== undefined) fields[`gpu${index}/${key}`] = value;
  }
  return fields;
}
