// What a metrics record means, for records as people write them: only `step` is required.
//
// - Time: the first of `t`, `time`, `timestamp`, `wall_time`, `_timestamp` (W&B) that is a finite
//   number. `t` is the run folder's own field, Unix ms as documented; in the others seconds and
//   milliseconds are told apart by size: below 1e11 it is seconds (1e11 ms is 1973, 1e11 s the
//   year 5138). A run whose records have none has no place on time axes.
// - Series: every other field whose value is a number or a NaN/Infinity marker; nested objects
//   flatten to `a/b` names (`{"train": {"loss": 2}}` is the series `train/loss`). Strings that are
//   not markers are labels, arrays are not series.
import { decodeMetric, type MetricRecord } from './run';

export const TIME_FIELDS = ['t', 'time', 'timestamp', 'wall_time', '_timestamp'] as const;

/** Fields of a record that are never series: the step, the record kind, and the time fields. */
const RESERVED: ReadonlySet<string> = new Set(['step', 'kind', ...TIME_FIELDS]);

/** Below this a foreign time field is in seconds. */
const MS_FROM = 1e11;

/** Deeper nesting is not followed (a record is data, not a tree to walk without end). */
const MAX_DEPTH = 8;

/** Records without a string `kind` are train records (a foreign writer's plain `{step, loss}`). */
export function kindOf(record: MetricRecord): string {
  return typeof record.kind === 'string' && record.kind !== '' ? record.kind : 'train';
}

/** The record's time in Unix ms, if it has one. */
export function recordTime(record: MetricRecord): number | undefined {
  for (const field of TIME_FIELDS) {
    const value = record[field];
    if (typeof value !== 'number' || !Number.isFinite(value)) continue;
    return field !== 't' && Math.abs(value) < MS_FROM ? value * 1000 : value;
  }
  return undefined;
}

/** Calls `use` with each series value of the record, by flattened name, in the record's order. */
export function forEachMetric(record: MetricRecord, use: (name: string, value: number) => void): void {
  for (const key in record) if (!RESERVED.has(key)) visit(key, record[key], 1, use);
}

function visit(name: string, value: unknown, depth: number, use: (name: string, value: number) => void): void {
  const number = decodeMetric(value);
  if (number !== undefined) use(name, number);
  else if (typeof value === 'object' && value !== null && !Array.isArray(value) && depth < MAX_DEPTH) {
    for (const [key, inner] of Object.entries(value)) visit(`${name}/${key}`, inner, depth + 1, use);
  }
}

/**
 * How a name qualifies `loss` in a series that is still the training loss, best first: `loss`
 * alone, then the train-side spellings (`train/loss`, `train_loss`, `Loss/train`, `trainLoss`),
 * then per-step (`loss_step`, Lightning's `train_loss_step`), then per-epoch means.
 */
const LOSS_QUALIFIER_RANK: ReadonlyMap<string, number> = new Map([
  ['train', 1],
  ['training', 1],
  ['step', 2],
  ['epoch', 3],
]);

/** A series name's words: split at separators and at camelCase humps, lower-cased. */
function wordsOf(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w !== '');
}

/** The rank of a series name as the training loss (lower is better), or undefined when it is not one. */
function lossRank(name: string): number | undefined {
  const words = wordsOf(name);
  if (!words.includes('loss')) return undefined;
  let rank = 0;
  for (const word of words) {
    if (word === 'loss') continue;
    const qualifier = LOSS_QUALIFIER_RANK.get(word);
    if (qualifier === undefined) return undefined; // val_loss, aux_loss, loss_scale: another quantity
    rank = Math.max(rank, qualifier);
  }
  return rank;
}

/**
 * The one rule for a run's primary (training) loss series among its series names: `loss` as our
 * trainers write it, else the way other loggers name it (`train/loss`, `train_loss`, `loss_step`,
 * `train_loss_epoch`, ...); ties go to the shorter, then alphabetically first name.
 */
export function primaryLossField(fields: Iterable<string>): string | undefined {
  let best: { name: string; rank: number } | undefined;
  for (const name of fields) {
    const rank = lossRank(name);
    if (rank === undefined) continue;
    if (
      !best ||
      rank < best.rank ||
      (rank === best.rank && (name.length < best.name.length || (name.length === best.name.length && name < best.name)))
    )
      best = { name, rank };
  }
  return best?.name;
}
