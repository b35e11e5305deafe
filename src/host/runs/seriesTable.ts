// Column-wise metric series: one SeriesTable per record kind, in growable Float64Arrays (capacity
// doubles), so a million train steps cost a few columns of 8 MB rather than a million objects.
// Rows past `length` are spare capacity: read `column.subarray(0, table.length)`.
import { forEachMetric, recordTime } from '../../shared/metricFields';
import type { MetricRecord } from '../../shared/run';
import type { SystemRecord } from '../../shared/system';
import type { SeriesTable } from './types';

const INITIAL_CAPACITY = 256;

export function newSeriesTable(kind: string): SeriesTable {
  return { kind, step: new Float64Array(INITIAL_CAPACITY), t: new Float64Array(INITIAL_CAPACITY), fields: new Map(), loggedNaN: new Map(), length: 0 };
}

export { kindOf } from '../../shared/metricFields';

function grown(column: Float64Array, capacity: number, fillFrom: number): Float64Array {
  const next = new Float64Array(capacity);
  next.set(column.subarray(0, Math.min(column.length, capacity)));
  if (fillFrom < capacity) next.fill(NaN, fillFrom);
  return next;
}

function ensureCapacity(table: SeriesTable, rows: number): void {
  if (rows <= table.step.length) return;
  let capacity = table.step.length;
  while (capacity < rows) capacity *= 2;
  table.step = grown(table.step, capacity, capacity);
  table.t = grown(table.t, capacity, capacity);
  for (const [name, column] of table.fields) table.fields.set(name, grown(column, capacity, table.length));
}

/** First row whose step is >= `step` (steps within a table strictly increase). */
export function rowAtOrAfter(table: SeriesTable, step: number): number {
  let lo = 0;
  let hi = table.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (table.step[mid] < step) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Appends one record. A step not after the table's last row (a resumed run repeating steps)
 * first cuts the table back to before that step: the later record wins.
 * Returns the first row index that is new or rewritten.
 */
export function appendRecord(table: SeriesTable, record: MetricRecord): number {
  const row = table.length > 0 && record.step <= table.step[table.length - 1] ? cutTable(table, record.step) : table.length;
  return writeRow(table, row, record, recordTime(record) ?? NaN); // no time: the row has no place on time axes
}

/** Drops the rows at or after `step` (a resumed run, or a source file that started over); returns the new length. */
export function cutTable(table: SeriesTable, step: number): number {
  const row = rowAtOrAfter(table, step);
  if (row >= table.length) return table.length;
  for (const rows of table.loggedNaN.values()) for (const r of rows) if (r >= row) rows.delete(r);
  table.length = row;
  return row;
}

/**
 * Appends one system.jsonl record (src/shared/system.ts): rows in the order written, by time. Its
 * step (NaN without one) never cuts the table back: the step stays put while a long step, an eval
 * or a checkpoint runs, and records keep coming. Returns the new row's index.
 */
export function appendSystemRecord(table: SeriesTable, record: SystemRecord): number {
  return writeRow(table, table.length, { ...record, step: record.step ?? NaN }, record.t);
}

function writeRow(table: SeriesTable, row: number, record: MetricRecord, t: number): number {
  ensureCapacity(table, row + 1);
  table.length = row;
  table.step[row] = record.step;
  table.t[row] = t;
  // A field missing from this record reads as NaN in its row, not in loggedNaN (a gap in a chart).
  for (const column of table.fields.values()) column[row] = NaN;
  forEachMetric(record, (name, value) => {
    let column = table.fields.get(name);
    if (!column) {
      column = new Float64Array(table.step.length).fill(NaN);
      table.fields.set(name, column);
    }
    column[row] = value;
    if (Number.isNaN(value)) {
      const rows = table.loggedNaN.get(name) ?? new Set<number>();
      rows.add(row);
      table.loggedNaN.set(name, rows);
    }
  });
  table.length = row + 1;
  return row;
}

/** The last logged value of a field, if any row has it. */
export function lastValue(table: SeriesTable | undefined, field: string): number | undefined {
  if (!table || table.length === 0) return undefined;
  const column = table.fields.get(field);
  if (!column) return undefined;
  // The newest row that has the field (logged, NaN included); rows without it are skipped.
  const logged = table.loggedNaN.get(field);
  for (let row = table.length - 1; row >= 0; row--) {
    if (!Number.isNaN(column[row]) || logged?.has(row) === true) return column[row];
  }
  return undefined;
}
