// Named float32 tensors as two files: NAME.json (format, names, shapes, byte offsets) and
// NAME.bin (raw little-endian float32, concatenated). numpy and torch read it with a few lines
// (see test/golden/reference.py); round-trips bit-exactly.
import * as v from 'valibot';
import { TENSOR_INDEX_MAX_BYTES } from '../../shared/checkpoint';

export const TENSOR_FILE_FORMAT = 'steelscope.tensors/1';
/** The 1.12B shape has ~220 tensors (and as many moments of each kind). */
const MAX_TENSORS = 100_000;

const TensorEntrySchema = v.object({
  name: v.pipe(v.string(), v.maxLength(1024)),
  shape: v.pipe(v.array(v.pipe(v.number(), v.safeInteger(), v.minValue(0))), v.maxLength(8)),
  dtype: v.literal('float32'),
  offset: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
  bytes: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
});
const TensorIndexSchema = v.object({
  format: v.literal(TENSOR_FILE_FORMAT),
  tensors: v.pipe(v.array(TensorEntrySchema), v.maxLength(MAX_TENSORS)),
});

export type TensorEntry = v.InferOutput<typeof TensorEntrySchema>;
export type TensorIndex = v.InferOutput<typeof TensorIndexSchema>;

/** Encodes tensors (in map order) as [index JSON text, binary payload]. */
export function encodeTensors(
  tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
): [string, Buffer] {
  const entries: TensorEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, { shape, data }] of tensors) {
    const expected = shape.reduce((a, b) => a * b, 1);
    if (expected !== data.length)
      throw new Error(`tensor ${name}: shape [${shape}] holds ${expected} values, data has ${data.length}`);
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    entries.push({ name, shape: [...shape], dtype: 'float32', offset, bytes: bytes.length });
    chunks.push(bytes);
    offset += bytes.length;
  }
  const index: TensorIndex = { format: TENSOR_FILE_FORMAT, tensors: entries };
  return [JSON.stringify(index, null, 1), Buffer.concat(chunks, offset)];
}

/** A tensor file that does not hold what its index says; the message names the file and the problem. */
export class TensorFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TensorFileError';
  }
}

/**
 * Checks an index against the size of its payload, before the payload is read: at most
 * TENSOR_INDEX_MAX_BYTES of JSON, known fields, unique names, and every tensor's bytes (its
 * shape's element count times 4) inside the payload. Throws TensorFileError.
 */
export function parseTensorIndex(text: Uint8Array, payloadBytes: number, label: string): TensorIndex {
  if (text.length > TENSOR_INDEX_MAX_BYTES)
    throw new TensorFileError(`${label}: index over ${TENSOR_INDEX_MAX_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (err) {
    throw new TensorFileError(`${label}: index unreadable: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = v.safeParse(TensorIndexSchema, value);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new TensorFileError(
      `${label}: not a ${TENSOR_FILE_FORMAT} index: ${v.getDotPath(issue) ?? 'index'} ${issue.message}`,
    );
  }
  const names = new Set<string>();
  for (const e of parsed.output.tensors) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    if (names.has(e.name)) throw new TensorFileError(`${label}: tensor ${e.name} is listed twice`);
    names.add(e.name);
    if (e.bytes !== count * 4 || e.offset + e.bytes > payloadBytes) {
      throw new TensorFileError(
        `${label}: tensor ${e.name} does not fit the payload (offset ${e.offset}, ${e.bytes} bytes, payload ${payloadBytes} bytes)`,
      );
    }
  }
  return parsed.output;
}

/** The tensors of a payload whose index parseTensorIndex has checked against it. */
export function decodeTensors(
  index: TensorIndex,
  payload: Uint8Array,
): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const e of index.tensors) {
    // Copy into an aligned buffer: Float32Array needs a 4-byte-aligned offset.
    const data = new Float32Array(e.bytes / 4);
    new Uint8Array(data.buffer).set(payload.subarray(e.offset, e.offset + e.bytes));
    out.set(e.name, { shape: e.shape, data });
  }
  return out;
}
