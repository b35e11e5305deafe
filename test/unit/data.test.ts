// The data pipeline on real temp files: corpus resolution and reading, hashes, shards, the
// seeded loader and its resume, and the train/validation split.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  BlockLoader,
  DataError,
  buildDataset,
  chooseValDocuments,
  defaultCorpusPath,
  evalBatches,
  readDocuments,
  readShard,
  resolveCorpus,
  verifyCorpus,
  writeShard,
  type CorpusFile,
  type DataCursor,
  type ReadStats,
  type TextEncoderLike,
} from '../../src/core/data/index';
import { publishDataset } from '../../src/core/train/prepare';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'steelscope-data-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

let fileCounter = 0;
/** Writes `content` to a fresh path under tmp (in `sub`, if given) and returns the path. */
function put(name: string, content: string | Buffer, sub = `case-${fileCounter++}`): string {
  const dir = join(tmp, sub);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

function readAll(input: string, stats?: ReadStats): string[] {
  return [...readDocuments(resolveCorpus(input), stats)];
}

/** Asserts that fn throws a DataError whose message contains every one of `parts`. */
function throwsData(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof DataError, `expected a DataError, got ${String(err)}`);
    for (const part of parts) assert.ok(err.message.includes(part), `"${err.message}" should mention "${part}"`);
    return true;
  });
}

// One id per UTF-16 code unit; EOT is 0, which no test text contains.
class CharTokenizer implements TextEncoderLike {
  readonly eotId = 0;
  constructor(readonly vocabSize = 128) {}
  encode(text: string): number[] {
    return Array.from(text, (ch) => ch.charCodeAt(0) % this.vocabSize);
  }
}

function decodeDocs(tokens: ArrayLike<number>): string[] {
  const docs: string[] = [];
  let current = '';
  for (let i = 0; i < tokens.length; i++) {
    if (tokens[i] === 0) {
      docs.push(current);
      current = '';
    } else current += String.fromCharCode(tokens[i]);
  }
  assert.equal(current, '', 'the stream ends with EOT');
  return docs;
}

describe('resolveCorpus and readDocuments', () => {
  test('a .txt file: blank lines separate documents; BOM and CRLF are normalized; the file is hashed', () => {
    const content = '\uFEFFfirst line\r\nsecond line\r\n\r\n\r\n  \r\nthird doc\r\n\n\nfourth\n';
    const path = put('a.txt', content);
    const [file] = resolveCorpus(path);
    assert.equal(file.path, path);
    assert.equal(file.bytes, Buffer.byteLength(content));
    assert.equal(file.sha256, createHash('sha256').update(content).digest('hex'));
    assert.deepEqual(readAll(path), ['first line\nsecond line', 'third doc', 'fourth']);
  });

  test('a .txt file without a final newline, and a single document', () => {
    assert.deepEqual(readAll(put('b.txt', 'only\ndoc')), ['only\ndoc']);
  });

  test('.jsonl: malformed lines and lines without a string text are skipped and counted', () => {
    const lines = [
      '\uFEFF{"text":"one"}',
      'not json',
      '{"title":"no text"}',
      '{"text": 5}',
      '["text"]',
      '',
      '{"text":"two\\r\\nlines","extra":1}\r',
      '{"text":"   "}',
      '{"text":"三"}',
    ];
    const stats: ReadStats = { documents: 0, skippedLines: 0 };
    assert.deepEqual(readAll(put('c.jsonl', lines.join('\n')), stats), ['one', 'two\nlines', '三']);
    assert.deepEqual(stats, { documents: 3, skippedLines: 4 });
  });

  test('.jsonl.gz and .txt.gz are gunzipped', () => {
    const dir = `gz-${fileCounter++}`;
    put('a.jsonl.gz', gzipSync('{"text":"甲"}\n{"text":"乙"}\n'), dir);
    put('b.txt.gz', gzipSync('丙\n\n丁\n'), dir);
    assert.deepEqual(readAll(join(tmp, dir)), ['甲', '乙', '丙', '丁']);
  });

  test('large files are read across chunk boundaries without losing or splitting text', () => {
    const docs = Array.from({ length: 30000 }, (_, i) => `文檔 ${i} ${'字'.repeat(i % 97)}`);
    const jsonl = docs.map((text) => JSON.stringify({ text })).join('\r\n');
    assert.ok(Buffer.byteLength(jsonl) > 4 * 1024 * 1024, 'spans more than one read chunk');
    assert.deepEqual(readAll(put('big.jsonl', jsonl)), docs);
  });

  test('a folder: recursive, sorted, only supported extensions, hidden and empty files skipped', () => {
    const dir = `folder-${fileCounter++}`;
    put('b.txt', 'B', dir);
    put('a.jsonl', '{"text":"A"}', dir);
    put('notes.md', '# not data', dir);
    put('empty.txt', '', dir);
    put('.hidden.txt', 'hidden', dir);
    put('c.txt', 'C in hidden dir', `${dir}/.git`);
    put('z.txt', 'Z', `${dir}/sub`);
    put('d.TXT', 'D', `${dir}/sub`);
    const files = resolveCorpus(join(tmp, dir));
    assert.deepEqual(
      files.map((f) => f.path),
      [
        join(tmp, dir, 'a.jsonl'),
        join(tmp, dir, 'b.txt'),
        join(tmp, dir, 'sub', 'd.TXT'),
        join(tmp, dir, 'sub', 'z.txt'),
      ],
    );
    assert.deepEqual([...readDocuments(files)], ['A', 'B', 'D', 'Z']);
  });
});

describe('corpus errors name the path', () => {
  test('missing path', () => {
    const path = join(tmp, 'nope', 'missing.txt');
    throwsData(() => resolveCorpus(path), path, 'does not exist');
  });

  test('empty file', () => {
    const path = put('empty.jsonl', '');
    throwsData(() => resolveCorpus(path), path, 'empty');
  });

  test('empty folder, and a folder of unsupported files', () => {
    const empty = join(tmp, `empty-${fileCounter++}`);
    mkdirSync(empty);
    throwsData(() => resolveCorpus(empty), empty, 'no usable files');
    const dir = `unsupported-${fileCounter++}`;
    put('a.md', 'text', dir);
    put('b.json', '{"text":"x"}', dir);
    throwsData(() => resolveCorpus(join(tmp, dir)), join(tmp, dir), '.jsonl');
  });

  test('a single file of an unsupported type', () => {
    const path = put('data.csv', 'a,b');
    throwsData(() => resolveCorpus(path), path, 'not a .txt');
  });

  test('a .jsonl with no valid line', () => {
    const path = put('bad.jsonl', 'hello\nworld\n');
    const files = resolveCorpus(path);
    throwsData(() => [...readDocuments(files)], path, 'no valid line', 'line 1');
  });

  test('a .txt of blank lines only, and a .gz that is not gzip', () => {
    const blank = put('blank.txt', '\n \n\n');
    throwsData(() => readAll(blank), blank, 'no text');
    const fake = put('fake.jsonl.gz', '{"text":"x"}');
    throwsData(() => readAll(fake), fake, 'gzip');
  });

  test('an unreadable file', { skip: process.getuid?.() === 0 && 'root can read anything' }, () => {
    const path = put('locked.txt', 'secret');
    chmodSync(path, 0o000);
    throwsData(() => resolveCorpus(path), path, 'cannot be read');
  });
});

describe('verifyCorpus', () => {
  test('passes on unchanged data; names the file whose byte changed, and a missing file', () => {
    const dir = `verify-${fileCounter++}`;
    put('a.txt', 'alpha', dir);
    const b = put('b.txt', 'bravo', dir);
    const recorded: CorpusFile[] = resolveCorpus(join(tmp, dir));
    verifyCorpus(recorded);
    writeFileSync(b, 'bravO');
    throwsData(
      () => verifyCorpus(recorded),
      b,
      'changed since the run started',
      recorded[1].sha256,
      'Restore it, or start a new run',
    );
    writeFileSync(b, 'bravo');
    verifyCorpus(recorded);
    rmSync(b);
    throwsData(() => verifyCorpus(recorded), b, 'missing');
  });

  test('a shipped dataset is found in this install by name; other bytes are refused naming --data', () => {
    const [shipped] = resolveCorpus('default');
    assert.equal(shipped.bundled, 'default');
    const moved = { ...shipped, path: join(tmp, 'old-install', 'corpus', 'poetry.jsonl.gz') };
    assert.deepEqual(verifyCorpus([moved], 'default'), [shipped]);
    const other = { ...moved, sha256: '0'.repeat(64) };
    assert.throws(() => verifyCorpus([other], 'default'), {
      name: 'DataError',
      message:
        /^The bundled corpus changed since this run started \(sha256 000000000000…, now [0-9a-f]{12}…\); resume with --data <file> pointing at the original\.$/,
    });
    // A run.json from before the name: the file name and the sha256 say it shipped.
    const { bundled: _b, ...old } = moved;
    assert.deepEqual(verifyCorpus([old], old.path), [shipped]);
    // A user's file that only shares the name keeps today's message.
    const { bundled: _o, ...users } = other;
    throwsData(() => verifyCorpus([users], users.path), users.path, 'is missing');
  });

  test('resume --data: the recorded files found by sha256 in the file or folder given', () => {
    const dir = `given-${fileCounter++}`;
    const a = put('a.txt', 'alpha', dir);
    const recorded = resolveCorpus(a);
    const elsewhere = put('renamed.txt', 'alpha', `${dir}-moved`);
    assert.equal(verifyCorpus(recorded, a, join(tmp, `${dir}-moved`))[0].path, elsewhere);
    put('other.txt', 'other', `${dir}-wrong`);
    assert.throws(
      () => verifyCorpus(recorded, a, join(tmp, `${dir}-wrong`)),
      /holds no file with the sha256 of the run's a\.txt/,
    );
  });
});

describe('shards', () => {
  test('round-trip uint16 and uint32, including an empty shard', () => {
    const u16 = Uint16Array.from({ length: 1000 }, (_, i) => (i * 7919) % 65536);
    const u32 = Uint32Array.from({ length: 1000 }, (_, i) => (i * 2654435761) >>> 0);
    const dir = join(tmp, `shards-${fileCounter++}`);
    mkdirSync(dir);
    for (const tokens of [u16, u32, new Uint16Array(0)]) {
      const path = join(dir, `t${tokens.BYTES_PER_ELEMENT}-${tokens.length}.bin`);
      writeShard(path, tokens);
      const back = readShard(path);
      assert.equal(back.constructor, tokens.constructor);
      assert.deepEqual(back, tokens);
      assert.equal(readFileSync(path).length, 24 + tokens.byteLength);
    }
    assert.equal(readFileSync(join(dir, 't2-1000.bin')).subarray(0, 8).toString('latin1'), 'SSTOK\0\0\0');
  });

  test('truncated, foreign, trailing-byte and future-version files are rejected with the path', () => {
    const good = join(tmp, `good-${fileCounter++}.bin`);
    writeShard(good, Uint16Array.from([1, 2, 3, 4]));
    const bytes = readFileSync(good);
    const truncated = put('truncated.bin', bytes.subarray(0, bytes.length - 1));
    throwsData(() => readShard(truncated), truncated, 'truncated');
    const headerOnly = put('short.bin', bytes.subarray(0, 10));
    throwsData(() => readShard(headerOnly), headerOnly, 'truncated');
    const foreign = put('foreign.bin', Buffer.concat([Buffer.from('NOTTOKEN'), bytes.subarray(8)]));
    throwsData(() => readShard(foreign), foreign, 'magic');
    const trailing = put('trailing.bin', Buffer.concat([bytes, Buffer.from([0, 0])]));
    throwsData(() => readShard(trailing), trailing, 'trailing');
    const future = Buffer.from(bytes);
    future.writeUInt32LE(2, 8);
    const futurePath = put('future.bin', future);
    throwsData(() => readShard(futurePath), futurePath, 'version 2');
    const missing = join(tmp, 'no-such-shard.bin');
    throwsData(() => readShard(missing), missing);
  });
});

/** Tokens 0..n-1, so block b holds b*blockLen .. b*blockLen+blockLen-1. */
function ramp(n: number): Uint16Array {
  return Uint16Array.from({ length: n }, (_, i) => i);
}

/** The block index of each row of a batch. */
function blocksOf(batch: { x: Int32Array }, blockLen: number): number[] {
  const seqLen = blockLen - 1;
  const rows: number[] = [];
  for (let at = 0; at < batch.x.length; at += seqLen) rows.push(batch.x[at] / blockLen);
  return rows;
}

describe('BlockLoader', () => {
  const blockLen = 9; // seq_len 8
  const tokens = ramp(blockLen * 50 + 5); // 50 blocks and a tail that is never used

  test('x and y are the block shifted by one', () => {
    const loader = new BlockLoader(tokens, blockLen, 1);
    assert.equal(loader.numBlocks, 50);
    const { x, y } = loader.nextBatch(4);
    assert.equal(x.length, 4 * 8);
    assert.equal(y.length, 4 * 8);
    for (let row = 0; row < 4; row++) {
      const start = x[row * 8];
      assert.equal(start % blockLen, 0);
      for (let j = 0; j < 8; j++) {
        assert.equal(x[row * 8 + j], start + j);
        assert.equal(y[row * 8 + j], start + j + 1);
      }
    }
  });

  test('every block of an epoch is visited exactly once, in a seeded order that changes per epoch', () => {
    const loader = new BlockLoader(tokens, blockLen, 7);
    const epoch0 = blocksOf(loader.nextBatch(50), blockLen);
    const epoch1 = blocksOf(loader.nextBatch(50), blockLen);
    const all = Array.from({ length: 50 }, (_, i) => i);
    assert.deepEqual(
      [...epoch0].sort((a, b) => a - b),
      all,
    );
    assert.deepEqual(
      [...epoch1].sort((a, b) => a - b),
      all,
    );
    assert.notDeepEqual(epoch0, all, 'shuffled');
    assert.notDeepEqual(epoch0, epoch1, 'a new order each epoch');
    assert.deepEqual(loader.cursor(), { seed: 7, epoch: 1, index: 50 });
    const other = blocksOf(new BlockLoader(tokens, blockLen, 8).nextBatch(50), blockLen);
    assert.notDeepEqual(other, epoch0, 'the seed matters');
  });

  test('same seed and cursor give identical batches', () => {
    const a = new BlockLoader(tokens, blockLen, 3);
    const b = new BlockLoader(tokens, blockLen, 3);
    for (let i = 0; i < 30; i++) assert.deepEqual(a.nextBatch(6), b.nextBatch(6));
    const cursor: DataCursor = { seed: 3, epoch: 2, index: 17 };
    assert.deepEqual(
      new BlockLoader(tokens, blockLen, 3, cursor).nextBatch(5),
      new BlockLoader(tokens, blockLen, 3, cursor).nextBatch(5),
    );
  });

  test('a restored cursor continues exactly as an uninterrupted loader, mid-epoch and across epochs', () => {
    const straight = new BlockLoader(tokens, blockLen, 11);
    let resumed = new BlockLoader(tokens, blockLen, 11);
    // 7 rows a batch does not divide 50, so batches straddle epoch boundaries.
    for (let step = 0; step < 40; step++) {
      if (step % 3 === 0) {
        const saved = JSON.parse(JSON.stringify(resumed.cursor())) as DataCursor;
        resumed = new BlockLoader(tokens, blockLen, 11, saved);
      }
      assert.deepEqual(resumed.nextBatch(7), straight.nextBatch(7), `step ${step}`);
    }
    assert.ok(straight.cursor().epoch >= 5);
    // A cursor saved exactly at the end of an epoch.
    const whole = new BlockLoader(tokens, blockLen, 11);
    whole.nextBatch(50);
    const atEnd = new BlockLoader(tokens, blockLen, 11, whole.cursor());
    assert.deepEqual(atEnd.nextBatch(10), whole.nextBatch(10));
  });

  test('too little data, and a cursor past the data, are clear errors', () => {
    throwsData(() => new BlockLoader(ramp(100), 129, 0), '100 tokens', '129', 'seq_len');
    throwsData(
      () => new BlockLoader(ramp(100), 129, 0, undefined, 'Shard /x/train.bin'),
      'Shard /x/train.bin',
      '100 tokens',
    );
    throwsData(
      () => new BlockLoader(tokens, blockLen, 1, { seed: 1, epoch: 0, index: 51 }),
      'cursor',
      'start a new run',
    );
  });
});

describe('evalBatches', () => {
  const blockLen = 5;
  test('the first blocks in order, full batches only, capped at maxBatches', () => {
    const batches = evalBatches(ramp(blockLen * 23), blockLen, 4, 3);
    assert.equal(batches.length, 3);
    assert.deepEqual(
      batches.map((b) => blocksOf(b, blockLen)),
      [
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [8, 9, 10, 11],
      ],
    );
    assert.equal(batches[0].y[0], 1);
    assert.equal(evalBatches(ramp(blockLen * 23), blockLen, 4, 100).length, 5, 'fewer batches when blocks run out');
    assert.deepEqual(evalBatches(ramp(blockLen * 23), blockLen, 4, 3), batches, 'deterministic');
  });

  test('fewer blocks than a batch give one smaller batch; none give none', () => {
    const [only, ...rest] = evalBatches(ramp(blockLen * 3 + 2), blockLen, 8, 10);
    assert.equal(rest.length, 0);
    assert.deepEqual(blocksOf(only, blockLen), [0, 1, 2]);
    assert.deepEqual(evalBatches(ramp(blockLen - 1), blockLen, 8, 10), []);
  });
});

describe('buildDataset', () => {
  const docs = Array.from({ length: 200 }, (_, i) => `document number ${i}\nwith a second line`);
  let files: CorpusFile[];
  before(() => {
    const dir = `dataset-${fileCounter++}`;
    put(
      'a.jsonl',
      docs
        .slice(0, 120)
        .map((text) => JSON.stringify({ text }))
        .join('\n') + '\nbroken line\n',
      dir,
    );
    put('b.txt', docs.slice(120).join('\n\n'), dir);
    files = resolveCorpus(join(tmp, dir));
  });

  function build(seed: number, valFraction: number, tokenizer: TextEncoderLike = new CharTokenizer()) {
    const outDir = join(tmp, `out-${fileCounter++}`);
    const progress: number[] = [];
    const result = buildDataset({ files, tokenizer, valFraction, seed, outDir, onProgress: (n) => progress.push(n) });
    return { ...result, train: readShard(result.trainPath), val: readShard(result.valPath), progress };
  }

  test('documents end in EOT; validation documents are disjoint from training ones; counts add up', () => {
    const { train, val, stats, progress } = build(5, 0.1);
    const trainDocs = decodeDocs(train);
    const valDocs = decodeDocs(val);
    assert.equal(valDocs.length, 20);
    assert.equal(trainDocs.length, 180);
    assert.deepEqual([...trainDocs, ...valDocs].sort(), [...docs].sort(), 'every document exactly once');
    const trainSet = new Set(trainDocs);
    assert.ok(valDocs.every((d) => !trainSet.has(d)));
    assert.deepEqual(stats, {
      documents: 200,
      valDocuments: 20,
      trainTokens: train.length,
      valTokens: val.length,
      skippedLines: 1,
    });
    assert.ok(train instanceof Uint16Array);
    assert.equal(progress.at(-1), 200);
    // Training documents keep corpus order; the loader does the shuffling.
    assert.deepEqual(
      trainDocs,
      docs.filter((d) => trainSet.has(d)),
    );
  });

  test('deterministic for a seed; another seed holds out other documents', () => {
    const a = build(5, 0.1);
    const b = build(5, 0.1);
    assert.deepEqual(readFileSync(a.trainPath), readFileSync(b.trainPath));
    assert.deepEqual(readFileSync(a.valPath), readFileSync(b.valPath));
    assert.notDeepEqual(decodeDocs(build(6, 0.1).val), decodeDocs(a.val));
  });

  test('at least one validation document when valFraction > 0; none when it is 0', () => {
    assert.equal(build(1, 0.0001).stats.valDocuments, 1);
    const none = build(1, 0);
    assert.equal(none.stats.valTokens, 0);
    assert.equal(none.val.length, 0);
    assert.equal(decodeDocs(none.train).length, 200);
    assert.equal(
      chooseValDocuments(1, 0.5, 0).reduce((n, v) => n + v, 0),
      0,
      'one document stays for training',
    );
    assert.equal(
      chooseValDocuments(2, 0.9, 0).reduce((n, v) => n + v, 0),
      1,
      'never all documents',
    );
  });

  test('a vocabulary above 65536 gives uint32 shards', () => {
    const { train, val } = build(2, 0.1, new CharTokenizer(70000));
    assert.ok(train instanceof Uint32Array && val instanceof Uint32Array);
    assert.equal(decodeDocs(train).length + decodeDocs(val).length, 200);
  });
});

describe('the built default corpus', () => {
  const built = (() => {
    try {
      return existsSync(defaultCorpusPath());
    } catch {
      return false;
    }
  })();
  test('resolves and reads', { skip: !built && 'run `npm run build` first' }, () => {
    const [file] = resolveCorpus('default');
    assert.ok(file.path.endsWith(join('corpus', 'poetry.jsonl.gz')));
    let count = 0;
    for (const doc of readDocuments([file])) {
      assert.ok(doc.length > 0);
      if (++count === 1000) break;
    }
    assert.equal(count, 1000);
  });
});

describe('the dataset cache', () => {
  const folder = (name: string, files: Record<string, string>) => {
    const dir = join(tmp, name);
    mkdirSync(dir, { recursive: true });
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
    return dir;
  };

  test('a built dataset is published; one another run published first is kept, not pulled away', () => {
    const cached = join(tmp, 'cache-kept');
    publishDataset(folder('built-a', { 'train.bin': 'a', 'val.bin': 'a' }), cached);
    assert.equal(readFileSync(join(cached, 'train.bin'), 'utf8'), 'a');
    // The second of two runs preparing the same data at once: the first's folder stays in place.
    const second = folder('built-b', { 'train.bin': 'b', 'val.bin': 'b' });
    publishDataset(second, cached);
    assert.equal(readFileSync(join(cached, 'train.bin'), 'utf8'), 'a');
    assert.ok(!existsSync(second), 'the second copy is dropped');
  });

  test('a cached folder without its val.bin is replaced', () => {
    const cached = folder('cache-broken', { 'train.bin': 'old' });
    publishDataset(folder('built-c', { 'train.bin': 'c', 'val.bin': 'c' }), cached);
    assert.equal(readFileSync(join(cached, 'val.bin'), 'utf8'), 'c');
  });
});
