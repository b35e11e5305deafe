// Ingest of a TensorBoard event file by the real RunStore (the event-file reader of
// src/shared/node/formats/), for bench:dashboard beside the JSONL figure; also runnable alone:
//   node --import tsx bench/tfevents.ts [records]
// The file holds `records` events, one scalar each (PyTorch SummaryWriter's simple_value), the
// tags loss, lr, grad_norm, tok_per_s in turn, four per step, so 1M records are 250k steps.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { encodeTfRecord } from '../src/shared/formats/tfrecord';
import { RunStore } from '../src/host/runs/store';
import type { RunTarget } from '../src/host/runs/types';

const TAGS = ['loss', 'lr', 'grad_norm', 'tok_per_s'];

function eventBytes(i: number): Uint8Array {
  const step = Math.floor(i / TAGS.length);
  const w = new BinaryWriter();
  w.tag(1, WireType.Bit64).double(1.7e9 + step * 0.25);
  w.tag(2, WireType.Varint).int64(step);
  w.tag(5, WireType.LengthDelimited).fork(); // summary
  w.tag(1, WireType.LengthDelimited).fork(); // value
  w.tag(1, WireType.LengthDelimited).string(TAGS[i % TAGS.length]);
  w.tag(2, WireType.Bit32).float(3 / (1 + step / 20_000) + (i % 7) * 0.01);
  w.join().join();
  return w.finish();
}

export function writeEventFile(path: string, records: number): number {
  const parts: Uint8Array[] = [];
  let bytes = 0;
  for (let i = 0; i < records; i++) {
    const record = encodeTfRecord(eventBytes(i));
    parts.push(record);
    bytes += record.length;
  }
  writeFileSync(path, Buffer.concat(parts));
  return bytes;
}

const localTarget: RunTarget = {
  id: 'local',
  label: 'bench',
  isAlive: async () => false,
  listRunDirs: async () => [],
  start: () => Promise.reject(new Error('unused')),
  stop: () => Promise.reject(new Error('unused')),
  resume: () => Promise.reject(new Error('unused')),
  delete: () => Promise.reject(new Error('unused')),
  planDelete: () => Promise.reject(new Error('unused')),
  findTorch: () => Promise.reject(new Error('unused')),
  runCli: () => Promise.reject(new Error('unused')),
};

/** Writes the file, ingests it with a RunStore, and returns the line to print. */
export async function benchEventFileIngest(records: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-bench-tfevents-'));
  const store = new RunStore({ flushMs: 150, watch: false, pollMs: 0 });
  try {
    const bytes = writeEventFile(join(dir, 'events.out.tfevents.1700000000.bench'), records);
    const t = performance.now();
    const key = store.addRun(localTarget, dir);
    await store.whenIdle();
    const ms = performance.now() - t;
    const rows = store.get(key)?.tables.get('train')?.length;
    if (rows !== Math.ceil(records / TAGS.length)) throw new Error(`event-file ingest incomplete: ${rows} rows`);
    const rate = Math.round(records / (ms / 1000)).toLocaleString('en-US');
    return `event file ingest (RunStore, ${records.toLocaleString('en-US')} records, ${(bytes / 2 ** 20).toFixed(0)} MiB, ${rows.toLocaleString('en-US')} steps): ${rate} records/s (${ms.toFixed(0)} ms)`;
  } finally {
    store.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  void benchEventFileIngest(Number(process.argv[2] ?? 1_000_000)).then((line) => console.log(line));
}
