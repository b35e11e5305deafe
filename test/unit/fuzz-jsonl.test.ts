// Fuzz: random, truncated and mutated bytes (test/fuzz.ts, fixed seed and count) fed to every
// JSONL reader of the run folder (metrics, samples, events: in memory, through the incremental
// reader from a file that is rewritten under it, and through the extension's tailer) and to the
// follow protocol's decoding (a stdout stream split at random, as the remote follower receives it).
// No throw escapes, no reader holds more than the record cap plus one chunk, memory stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  applyFollowMessage,
  emptyOffsets,
  encodeRecordMessage,
  parseFollowMessage,
  RECORD_VALIDATORS,
  type FollowedFile,
  type FollowMessage,
  FOLLOWED_FILES,
} from '../../src/shared/follow-protocol';
import { RecordAssembler } from '../../src/shared/framing';
import { jsonlFramer, parseJsonl } from '../../src/shared/jsonl';
import { IncrementalReader } from '../../src/shared/node/reader';
import { JsonlTailer } from '../../src/host/runs/tailer';
import { Rng } from '../../src/core/rng';
import { fuzzCases } from '../fuzz';
import { scratch } from '../helpers';

const SEED = 20261202;
const CASES = 300;
const CAP = 512;
const CHUNK = 1024;

const VALID: Record<FollowedFile, Buffer[]> = {
  'metrics.jsonl': [
    Buffer.from(
      '{"step":1,"t":1700000000000,"kind":"train","loss":3.2,"lr":0.0003,"grad_norm":1.1,"tokens":4096,"tok_per_s":812}\n' +
        '{"step": 2, "t": 1700000000100, "loss": NaN, "grad_norm": Infinity, "lr": -Infinity, "note": "NaN"}\n' +
        '\n{"step":3,"t":1700000000200,"kind":"eval","loss":"NaN"}\r\n',
    ),
  ],
  'samples.jsonl': [
    Buffer.from(
      '{"step":10,"t":1,"prompt":"春","text":"風吹柳絮\\n花","temperature":0.8,"top_k":40,"top_p":0.95,"seed":7}\n',
    ),
  ],
  'events.jsonl': [
    Buffer.from(
      '{"step":0,"t":1,"kind":"start","level":"info","message":"開始"}\n{"step":5,"t":2,"kind":"nan","level":"error","message":"loss is NaN","value":NaN}\n',
    ),
  ],
  'system.jsonl': [
    Buffer.from(
      '{"t":1,"step":0,"cpu_pct":99.5,"rss_gb":0.2,"gpu0/name":"NVIDIA H100 80GB HBM3","gpu0/util_pct":87}\n',
    ),
  ],
  'evals.jsonl': [
    Buffer.from(
      '{"step":100,"t":1,"task":"poetry-mc","subject":"author","n":200,"acc":0.3,"stderr":0.03}\n' +
        '{"step":100,"t":1,"task":"poetry-mc","subject":"_average","n":400,"acc":0.28,"stderr":0.02}\n',
    ),
  ],
};

function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function memory(): number {
  collectGarbage();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('JSONL readers: fuzzed files never throw, never hold more than the cap plus a chunk', async () => {
  const before = memory();
  const dir = scratch('fuzz-jsonl');
  for (const file of Object.keys(VALID) as FollowedFile[]) {
    const accept: (value: unknown) => value is object = RECORD_VALIDATORS[file];
    const path = join(dir, file);
    writeFileSync(path, '');
    // One reader and one tailer follow the same file while every case is written over it (same
    // inode: each rewrite is a truncation or an in-place change to detect).
    const reader = new IncrementalReader(path, jsonlFramer, { maxRecordBytes: CAP, chunkBytes: CHUNK });
    const tailer = new JsonlTailer(path, accept, { pollMs: 0, watch: false, maxRecordBytes: CAP, chunkBytes: CHUNK });
    let delivered = 0;
    tailer.onRecords((records) => {
      for (const r of records) assert.ok(accept(r), `${file}: a delivered record has the file's shape`);
      delivered += records.length;
    });
    for (const c of fuzzCases(VALID[file], CASES, SEED)) {
      const chunk = parseJsonl(c.bytes, accept, CAP);
      assert.ok(chunk.consumed <= c.bytes.length, c.name);
      assert.ok(
        chunk.records.every((r) => accept(r)),
        c.name,
      );
      writeFileSync(path, c.bytes);
      for await (const event of reader.read())
        if (event.kind === 'frames') assert.ok(event.offset <= c.bytes.length, c.name);
      await tailer.readNow();
      assert.equal(tailer.lastError, undefined, `${file} ${c.name}: ${String(tailer.lastError)}`);
      assert.ok(reader.peakBufferedBytes <= CAP + CHUNK, `${file} ${c.name}: held ${reader.peakBufferedBytes} bytes`);
    }
    assert.ok(delivered > 0, `${file}: the valid parts of the cases were read`);
    tailer.dispose();
  }
  const grown = memory() - before;
  assert.ok(grown < 32 * 1024 * 1024, `memory grew by ${grown} bytes`);
});

/** A follower's stdout: every kind of message, records as the follower writes them. */
function protocolStream(): Buffer {
  const offsets = { 'metrics.jsonl': 120, 'samples.jsonl': 0, 'events.jsonl': 77 };
  const lines = [
    JSON.stringify({ ready: true, protocol: 'steelscope.follow/1', dir: '/home/u/run', from: emptyOffsets() }),
    JSON.stringify({ run: { format: 'steelscope.run/1', id: 'r', name: 'n', status: 'running' } }),
    JSON.stringify({
      checkpoints: [{ step: 10, dir: '/home/u/run/checkpoints/step-00000010', complete: true, eval_loss: 2.5 }],
    }),
    encodeRecordMessage('metrics.jsonl', 120, '{"step":1,"t":2,"loss":"NaN","lr":0.1}'),
    encodeRecordMessage(
      'samples.jsonl',
      90,
      '{"step":1,"t":2,"prompt":"p","text":"t","temperature":1,"top_k":0,"top_p":1,"seed":1}',
    ),
    JSON.stringify({ file: 'events.jsonl', offset: 77, malformed: true }),
    JSON.stringify({ reset: 'metrics.jsonl' }),
    JSON.stringify({ heartbeat: true, t: 1700000000000, offsets }),
    JSON.stringify({ error: { message: 'No run directory at /x.' } }),
  ];
  return Buffer.from(lines.join('\n') + '\n');
}

test('follow protocol: fuzzed stdout split anywhere never throws and yields only checked messages', () => {
  const before = memory();
  const rng = new Rng(SEED);
  let messages = 0;
  for (const c of fuzzCases([protocolStream()], CASES, SEED)) {
    const lines = new RecordAssembler(jsonlFramer, CAP);
    let offsets = emptyOffsets();
    const complete: Uint8Array[] = [];
    for (let at = 0; at < c.bytes.length;) {
      const size = 1 + rng.int(97);
      for (const item of lines.push(c.bytes.subarray(at, at + size)))
        if (item.kind === 'record') complete.push(item.bytes);
      at += size;
    }
    assert.ok(lines.peakWindow <= CAP + 97, `${c.name}: held ${lines.peakWindow} bytes`);
    for (const bytes of complete) {
      const message: FollowMessage | undefined = parseFollowMessage(Buffer.from(bytes).toString('utf8'));
      if (!message) continue;
      messages++;
      offsets = applyFollowMessage(offsets, message);
      if ('record' in message) assert.ok(RECORD_VALIDATORS[message.file](message.record), c.name);
    }
    for (const value of FOLLOWED_FILES.map((f) => offsets[f]))
      assert.ok(Number.isSafeInteger(value) && value >= 0, `${c.name}: offsets stay byte offsets`);
  }
  assert.ok(messages > CASES, 'the intact parts of the cases were read');
  const grown = memory() - before;
  assert.ok(grown < 32 * 1024 * 1024, `memory grew by ${grown} bytes`);
});
