// Fuzz of the checkpoint readers (issue 14): manifests, tensor index files and tokenizer JSON,
// from test/fuzz.ts (fixed seed and count). Every case ends in a value or a typed refusal
// (CheckpointError, TensorFileError, TokenizerError); nothing else escapes; no file is read past
// its cap; memory stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS } from '../../src/shared/config';
import { MANIFEST_MAX_BYTES, parseManifest, TENSOR_INDEX_MAX_BYTES } from '../../src/shared/checkpoint';
import { checkCheckpoint, CheckpointError } from '../../src/shared/node/checkpoints';
import { loadCheckpoint, saveCheckpoint, type CheckpointPayload } from '../../src/core/train/checkpoint';
import { decodeTensors, encodeTensors, parseTensorIndex, TensorFileError } from '../../src/core/train/tensorfile';
import { BpeTokenizer, TokenizerError } from '../../src/core/tokenizer';
import { fuzzCases } from '../fuzz';

const SEED = 14;
const COUNT = 600;

function payload(): CheckpointPayload {
  const w = new Float32Array(24).map((_, i) => i / 7);
  return {
    run_id: 'fuzz-run',
    step: 8,
    tokens: 800,
    config: PRESETS.tiny,
    data: {
      cursor: { seed: 1, epoch: 0, index: 3 },
      files: [{ path: '/data/a.txt', sha256: 'a'.repeat(64), bytes: 10 }],
    },
    rng: [1, 2, 3, 4],
    optimizer: { step: 8 },
    eval_loss: 2.5,
    train_loss: 2.75,
    weights: new Map([
      ['wte', { shape: [4, 6], data: w }],
      ['ln_f.weight', { shape: [6], data: new Float32Array(6).fill(1) }],
    ]),
    optimizerState: new Map([
      ['m.wte', { shape: [4, 6], data: w }],
      ['v.wte', { shape: [4, 6], data: w }],
    ]),
    tokenizerJson: JSON.stringify(BpeTokenizer.train(['床前明月光，疑是地上霜。', 'It is 2024.'], 300).toJSON()),
  };
}

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'steelscope-fuzz-ckpt-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Replaces one file of a checkpoint and re-seals the manifest, so the reader gets past the hash to the parser. */
function reseal(dir: string, name: string, bytes: Buffer): void {
  writeFileSync(join(dir, name), bytes);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as {
    files: { name: string; sha256: string; bytes: number }[];
  };
  for (const f of manifest.files) if (f.name === name) Object.assign(f, { sha256: sha(bytes), bytes: bytes.length });
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

function isRefusal(err: unknown): boolean {
  return err instanceof CheckpointError || err instanceof TensorFileError || err instanceof TokenizerError;
}

function memory(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('fuzzed manifests: parsed or refused with a reason, never a throw; a folder never loads a bad one', () => {
  withDir((run) => {
    const dir = saveCheckpoint(run, payload());
    const valid = readFileSync(join(dir, 'manifest.json'));
    let accepted = 0;
    const start = memory();
    for (const c of fuzzCases([valid], COUNT, SEED)) {
      const parsed = parseManifest(c.bytes);
      if (parsed.ok) accepted++;
      else assert.equal(typeof parsed.reason, 'string', c.name);
      writeFileSync(join(dir, 'manifest.json'), c.bytes);
      const check = checkCheckpoint(dir, { hashes: true });
      assert.equal(check.ok, parsed.ok && check.ok, c.name);
      try {
        loadCheckpoint(dir);
      } catch (err) {
        assert.ok(isRefusal(err), `${c.name}: ${String(err)}`);
      }
    }
    assert.ok(accepted > 0 && accepted < COUNT, `some cases survive (whitespace, digits), most do not: ${accepted}`);
    assert.ok(memory() - start < 64 * 1024 * 1024, 'memory stays bounded');
  });
});

test('fuzzed tensor index files: a checked index or a TensorFileError; decoding stays inside the payload', () => {
  const [index, payloadBytes] = encodeTensors(payload().weights);
  const start = memory();
  for (const c of fuzzCases([Buffer.from(index)], COUNT, SEED + 1)) {
    let parsed;
    try {
      parsed = parseTensorIndex(c.bytes, payloadBytes.length, 'weights.json');
    } catch (err) {
      assert.ok(err instanceof TensorFileError, `${c.name}: ${String(err)}`);
      continue;
    }
    for (const e of parsed.tensors) assert.ok(e.offset + e.bytes <= payloadBytes.length, c.name);
    for (const t of decodeTensors(parsed, payloadBytes).values())
      assert.ok(t.data.byteLength <= payloadBytes.length, c.name);
  }
  assert.ok(memory() - start < 64 * 1024 * 1024, 'memory stays bounded');
});

test('fuzzed index and tokenizer files inside a re-sealed checkpoint: loaded, or refused with a typed error', () => {
  withDir((run) => {
    const dir = saveCheckpoint(run, payload());
    const validIndex = readFileSync(join(dir, 'weights.json'));
    const validTokenizer = readFileSync(join(dir, 'tokenizer.json'));
    for (const c of fuzzCases([validIndex], COUNT / 3, SEED + 2)) {
      reseal(dir, 'weights.json', c.bytes);
      try {
        loadCheckpoint(dir);
      } catch (err) {
        assert.ok(isRefusal(err), `${c.name}: ${String(err)}`);
      }
    }
    reseal(dir, 'weights.json', validIndex);
    let loaded = 0;
    for (const c of fuzzCases([validTokenizer], COUNT, SEED + 3)) {
      reseal(dir, 'tokenizer.json', c.bytes);
      try {
        BpeTokenizer.fromJSON(loadCheckpoint(dir).tokenizerJson);
        loaded++;
      } catch (err) {
        assert.ok(isRefusal(err), `${c.name}: ${String(err)}`);
      }
    }
    assert.ok(loaded > 0, 'the unharmed cases still load');
  });
});

test('no read past a cap: oversized, endless and blocking files are refused before they are read', () => {
  withDir((run) => {
    const dir = saveCheckpoint(run, payload());
    const manifest = join(dir, 'manifest.json');
    const good = readFileSync(manifest);
    // A 64 GiB sparse manifest: reading it whole would take minutes and all memory.
    writeFileSync(manifest, good);
    truncateSync(manifest, 64 * 1024 ** 3);
    assert.match(refusal(dir), new RegExp(`more than the ${MANIFEST_MAX_BYTES} allowed`));
    unlinkSync(manifest);
    symlinkSync('/dev/zero', manifest);
    assert.match(refusal(dir), /manifest\.json is not a regular file \(a symbolic link\)/);
    unlinkSync(manifest);
    execFileSync('mkfifo', [manifest]); // opening a FIFO would block until a writer came
    assert.match(refusal(dir), /manifest\.json is not a regular file/);
    unlinkSync(manifest);
    writeFileSync(manifest, good);

    // A data file the manifest says is small but that grew: refused by its size, not read.
    const index = join(dir, 'weights.json');
    truncateSync(index, 32 * 1024 ** 3);
    assert.match(refusal(dir), /weights\.json has 34359738368 bytes, the manifest says/);
    // A manifest that claims a tensor index beyond the cap is refused before the folder is looked at.
    const claims = JSON.parse(good.toString('utf8')) as { files: { name: string; bytes: number }[] };
    for (const f of claims.files) if (f.name === 'weights.json') f.bytes = TENSOR_INDEX_MAX_BYTES + 1;
    const parsed = parseManifest(Buffer.from(JSON.stringify(claims)));
    assert.ok(!parsed.ok && /capped at 8 and 64 MiB/.test(parsed.reason), JSON.stringify(parsed));
  });
});

function refusal(dir: string): string {
  const check = checkCheckpoint(dir, { hashes: true });
  assert.ok(!check.ok);
  assert.throws(() => loadCheckpoint(dir), CheckpointError);
  return check.reason;
}
