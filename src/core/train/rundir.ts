// Writes a run directory (format in src/shared/run.ts): run.json replaced atomically, the JSONL
// files appended one whole line per write so a reader never sees half a record for long.
import {
  appendFileSync,
  closeSync,
  fsyncSync,
  openSync,
  renameSync,
  writeFileSync,
  writeSync,
  readFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { heldByOtherTrainer } from '../../shared/node/pid';
import { UsageError } from '../errors';
import {
  encodeMetric,
  parseRunInfo,
  type EventKind,
  type EventLevel,
  type EventRecord,
  type MetricRecord,
  type RunInfo,
  type SampleRecord,
} from '../../shared/run';
import { SYSTEM_FILE, type SystemRecord } from '../../shared/system';

/** Writes `data` to `path` via a temp file, fsync and rename: readers see the old or the new file, never a mix. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function readRunInfo(runDir: string): RunInfo {
  const path = join(runDir, 'run.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'has no run.json' : `has a run.json that cannot be read (${code ?? String(err)})`;
    throw new UsageError(
      `${runDir} is not a steelscope run folder: it ${why}. Pass the folder \`steelscope train\` created.`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `${path} is not valid JSON (${(err as Error).message}); the run cannot be resumed. Start a new run.`,
    );
  }
  const info = parseRunInfo(value, path);
  if (!info.ok)
    throw new UsageError(`${path} is not a usable steelscope.run/1 file (${info.error}); the run cannot be resumed.`);
  return info.value;
}

/** run.json of a run about to be resumed (by either engine); refused while another live trainer holds it. */
export function readRunToResume(runDir: string): RunInfo {
  const info = readRunInfo(runDir);
  if (heldByOtherTrainer(info))
    throw new UsageError(`Run ${info.name} is still running (pid ${info.pid}). Stop it first.`);
  return info;
}

export class RunWriter {
  constructor(
    readonly dir: string,
    private info: RunInfo,
  ) {}

  get run(): Readonly<RunInfo> {
    return this.info;
  }

  /** Merges `patch` into run.json and rewrites it atomically. */
  update(patch: Partial<RunInfo>): void {
    this.info = { ...this.info, ...patch };
    writeFileAtomic(join(this.dir, 'run.json'), JSON.stringify(this.info, null, 2) + '\n');
  }

  metric(record: { step: number; kind: string } & Record<string, number | string>): void {
    const line: MetricRecord = { step: record.step, t: Date.now() };
    for (const [key, value] of Object.entries(record)) {
      if (key === 'step') continue;
      line[key] = typeof value === 'number' ? encodeMetric(value) : value;
    }
    this.append('metrics.jsonl', line);
  }

  sample(record: Omit<SampleRecord, 't'>): void {
    this.append('samples.jsonl', { ...record, t: Date.now() });
  }

  event(step: number, kind: EventKind, level: EventLevel, message: string, detail: Record<string, unknown> = {}): void {
    const record: EventRecord = { ...detail, step, t: Date.now(), kind, level, message };
    this.append('events.jsonl', record);
  }

  /** One system.jsonl record (src/shared/system.ts). */
  system(record: SystemRecord): void {
    this.append(SYSTEM_FILE, record);
  }

  private append(file: string, record: object): void {
    // One appendFileSync per line: a single write(2) of a whole line, flushed to the OS at once.
    appendFileSync(join(this.dir, file), JSON.stringify(record) + '\n');
  }
}

export function touch(path: string): void {
  writeFileSync(path, '');
}
