// Fixture writers for the run-folder format tests: event files come from a Python script that
// builds TensorBoard's messages with python3-protobuf and frames them with python3-crcmod (not our
// reader's code), and what readers hand out is folded into series tables as the store does.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { appendRecord, cutTable, newSeriesTable } from '../../src/host/runs/seriesTable';
import type { SeriesTable } from '../../src/host/runs/types';
import type { FormatBatch } from '../../src/shared/node/formats/batch';
import { kindOf } from '../../src/host/runs/seriesTable';

export const PYTHON = '/usr/bin/python3';
export const WRITE_TFEVENTS = join(__dirname, 'write_tfevents.py');

export type TbValue =
  | { tag: string; simple_value: number }
  | { tag: string; tensor: number; dtype?: 'float' | 'double'; packed?: 'content' | 'val' }
  | { tag: string; text: string };

export interface TbEvent {
  wall_time: number;
  step: number;
  values: TbValue[];
  /** Seconds the writer waits before this event (a live writer). */
  delay?: number;
  /** A path the writer waits for before this event: the test says when it may go on. */
  wait_for?: string;
}

/** Appends events to an event file (the first call also writes the file_version event). */
export function writeEvents(path: string, events: TbEvent[]): void {
  execFileSync(PYTHON, [WRITE_TFEVENTS, path], { input: JSON.stringify(events) });
}

/** What the store would hold after these batches: tables by kind, samples in order. */
export interface Folded {
  tables: Map<string, SeriesTable>;
  samples: { step: number; prompt: string; text: string }[];
  malformed: number;
}

export function fold(
  batches: readonly FormatBatch[],
  into: Folded = { tables: new Map(), samples: [], malformed: 0 },
): Folded {
  for (const batch of batches) {
    if (batch.reset) {
      into.tables.clear();
      into.samples = [];
      into.malformed = 0;
    }
    for (const [kind, step] of Object.entries(batch.cut?.tables ?? {})) {
      const table = into.tables.get(kind);
      if (table) cutTable(table, step);
    }
    const samplesCut = batch.cut?.samples;
    if (samplesCut !== undefined) into.samples = into.samples.filter((s) => s.step < samplesCut);
    for (const record of batch.metrics) {
      const kind = kindOf(record);
      let table = into.tables.get(kind);
      if (!table) into.tables.set(kind, (table = newSeriesTable(kind)));
      appendRecord(table, record);
    }
    for (const s of batch.samples) into.samples.push({ step: s.step, prompt: s.prompt, text: s.text });
    into.malformed += batch.malformed;
  }
  return into;
}

/** A table as plain data: per series, [step, value] pairs of the rows that have it (deepEqual-able). */
export function points(folded: Folded): Record<string, [number, number][]> {
  const out: Record<string, [number, number][]> = {};
  for (const [kind, table] of folded.tables) {
    for (const [field, column] of table.fields) {
      const pairs: [number, number][] = [];
      for (let i = 0; i < table.length; i++) if (!Number.isNaN(column[i])) pairs.push([table.step[i], column[i]]);
      out[`${kind}:${field}`] = pairs;
    }
  }
  return out;
}
