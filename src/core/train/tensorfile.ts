// Named float32 tensors as two files: NAME.json (format, names, shapes, byte offsets) and
// NAME.bin (raw little-endian float32, concatenated). numpy and torch read it with a few lines
// (see test/golden/reference.py); round-trips bit-exactly.
import { readFileSync } from 'node:fs';

export const TENSOR_FILE_FORMAT = 'steelscope.tensors/1';

export interface TensorEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  offset: number; // bytes into the .bin
  bytes: number;
}

export interface TensorIndex {
  format: typeof TENSOR_FILE_FORMAT;
  tensors: TensorEntry[];
}

/** Encodes tensors (in map order) as [index JSON text, binary payload]. */
export function encodeTensors(tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>): [string, Buffer] {
  const entries: TensorEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    const expected = shape.reduce((a, b) => a * b, 1);
    if (expected !== data.length) throw new Error(`tensor ${name}: shape [${shape}] holds ${expected} values, data has ${data.length}`);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    entries.push({ name, shape: [...shape], dtype: 'float32', offset, bytes: bytes.length });
    chunks.push(bytes);
    offset += bytes.length;
  }
  const index: TensorIndex = { format: TENSOR_FILE_FORMAT, tensors: entries };
  return [JSON.stringify(index, null, 1), Buffer.concat(chunks, offset)];
}

/** Reads NAME.json + NAME.bin back; every entry is checked against the payload's size. */
export function readTensors(jsonPath: string, binPath: string): Map<string, { shape: number[]; data: Float32Array }> {
  const index = parseIndex(readFileSync(jsonPath, 'utf8'), jsonPath);
  const payload = readFileSync(binPath);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const e of index.tensors) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (e.bytes !== count * 4 || e.offset + e.bytes > payload.length) {
      throw new Error(`${binPath}: tensor ${e.name} does not fit the file (offset ${e.offset}, ${e.bytes} bytes, file ${payload.length} bytes)`);
    }
    // Copy into an aligned buffer: Float32Array needs a 4-byte-aligned offset.
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(payload.subarray(e.offset, e.offset + e.bytes));
    out.set(e.name, { shape: e.shape, data });
  }
  return out;
}

function parseIndex(text: string, path: string): TensorIndex {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || (value as { format?: unknown }).format !== TENSOR_FILE_FORMAT) {
    throw new Error(`${path}: not a ${TENSOR_FILE_FORMAT} index`);
  }
  const tensors = (value as { tensors?: unknown }).tensors;
  if (!Array.isArray(tensors)) throw new Error(`${path}: missing "tensors" list`);
  for (const t of tensors as unknown[]) {
    const e = t as Partial<TensorEntry>;
    const ok =
      typeof e.name === 'string' &&
      Array.isArray(e.shape) &&
      e.shape.every((n) => Number.isInteger(n) && n >= 0) &&
      e.dtype === 'float32' &&
      Number.isInteger(e.offset) &&
      Number.isInteger(e.bytes);
    if (!ok) throw new Error(`${path}: malformed tensor entry ${JSON.stringify(t)}`);
  }
  return value as TensorIndex;
}
