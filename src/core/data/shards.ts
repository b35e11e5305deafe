// Binary token shards: a 24-byte versioned header, then the tokens little-endian.
//   bytes 0..7   magic "SSTOK\0\0\0"
//   bytes 8..11  u32 version (1)
//   bytes 12..15 u32 dtype (1 = uint16, 2 = uint32)
//   bytes 16..23 u64 token count, as two u32 (low word first)
// The header is a multiple of 4 bytes, so the payload could be mapped as a typed array as is.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { dirname } from 'node:path';
import { DataError } from './corpus';

const MAGIC = Buffer.from('SSTOK\0\0\0', 'latin1');
const VERSION = 1;
const HEADER_BYTES = 24;
const DTYPE_U16 = 1;
const DTYPE_U32 = 2;
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

export type TokenArray = Uint16Array | Uint32Array;

/** The smallest token array type that holds every id below vocabSize. */
export function tokenArrayFor(vocabSize: number, length: number): TokenArray {
  return vocabSize <= 65536 ? new Uint16Array(length) : new Uint32Array(length);
}

function header(tokens: TokenArray): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(tokens instanceof Uint16Array ? DTYPE_U16 : DTYPE_U32, 12);
  head.writeUInt32LE(tokens.length % 2 ** 32, 16);
  head.writeUInt32LE(Math.floor(tokens.length / 2 ** 32), 20);
  return head;
}

/** The tokens' bytes in little-endian order, whatever the host's order. */
function payload(tokens: TokenArray): Uint8Array {
  const bytes = new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  if (LITTLE_ENDIAN_HOST) return bytes;
  const out = Buffer.from(bytes);
  if (tokens instanceof Uint16Array) out.swap16();
  else out.swap32();
  return out;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let at = 0; at < bytes.length;) at += writeSync(fd, bytes, at, bytes.length - at);
}

/** Atomic: written to a temp file, fsynced, then renamed over `path`. */
export function writeShard(path: string, tokens: TokenArray): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeAll(fd, header(tokens));
      writeAll(fd, payload(tokens));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncDir(dirname(path));
}

/** Makes the rename itself durable; not possible on every platform (Windows), so best effort. */
function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // the data is already fsynced; only the directory entry might be lost on a power cut
  }
}

function readExactly(fd: number, into: Uint8Array, position: number): number {
  let filled = 0;
  for (let n; filled < into.length && (n = readSync(fd, into, filled, into.length - filled, position + filled)) > 0;) {
    filled += n;
  }
  return filled;
}

function corrupt(path: string, what: string): DataError {
  return new DataError(`Token shard ${path} ${what}. Delete it and let the trainer rebuild it (start a new run).`);
}

/** Reads and validates a shard written by writeShard; anything else is a DataError naming it. */
export function readShard(path: string): TokenArray {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const code = err instanceof Error && 'code' in err ? String(err.code) : String(err);
    throw new DataError(`Token shard ${path} cannot be read (${code}). Start a new run to rebuild it.`);
  }
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(HEADER_BYTES);
    if (readExactly(fd, head, 0) < HEADER_BYTES)
      throw corrupt(path, `is truncated (${size} bytes, shorter than its header)`);
    if (!head.subarray(0, 8).equals(MAGIC)) throw corrupt(path, 'is not a steelscope token shard (wrong magic)');
    const version = head.readUInt32LE(8);
    if (version !== VERSION) throw corrupt(path, `has format version ${version}; this build reads version ${VERSION}`);
    const dtype = head.readUInt32LE(12);
    if (dtype !== DTYPE_U16 && dtype !== DTYPE_U32) throw corrupt(path, `has an unknown token type ${dtype}`);
    const count = head.readUInt32LE(16) + head.readUInt32LE(20) * 2 ** 32;
    const width = dtype === DTYPE_U16 ? 2 : 4;
    const expected = HEADER_BYTES + count * width;
    if (size !== expected) {
      throw corrupt(
        path,
        `${size < expected ? 'is truncated' : 'has trailing bytes'} (${size} bytes, expected ${expected} for ${count} tokens)`,
      );
    }
    const tokens = dtype === DTYPE_U16 ? new Uint16Array(count) : new Uint32Array(count);
    const bytes = new Uint8Array(tokens.buffer);
    if (readExactly(fd, bytes, HEADER_BYTES) < bytes.length) throw corrupt(path, 'is truncated');
    if (!LITTLE_ENDIAN_HOST) {
      if (width === 2) Buffer.from(tokens.buffer).swap16();
      else Buffer.from(tokens.buffer).swap32();
    }
    return tokens;
  } finally {
    closeSync(fd);
  }
}
