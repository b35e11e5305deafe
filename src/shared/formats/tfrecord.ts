// TFRecord framing, the container of TensorBoard's event files: each record is
//   u64 LE length | u32 LE masked CRC32C of those 8 bytes | data | u32 LE masked CRC32C of data.
// The framer hands out whole records, header and checksums included, so decodeTfRecord can tell
// the two kinds of damage apart, as TensorBoard's reader does:
// - a bad length checksum: the length cannot be trusted, so nothing after it can be framed; the
//   framer hands out the 12-byte header alone and the file's reader stops there, counting an error;
// - a bad data checksum: the length was good, so only that record is skipped.
// A partial record at the end waits for the rest (the RecordAssembler's rule).
import { crc32c } from '@aws-crypto/crc32c';
import type { Framer, Skipper, Span } from '../framing';

const HEADER_BYTES = 12;
const FOOTER_BYTES = 4;
const MASK_DELTA = 0xa282ead8;

/** TensorBoard's masked CRC32C: rotate right by 15 bits, add a constant (mod 2^32). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + MASK_DELTA) >>> 0;
}

// Little-endian reads by hand: a DataView per record was a tenth of the ingest time (bench/tfevents.ts).
function u32(bytes: Uint8Array, at: number): number {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

/** The data length a header claims (the header's 8 bytes as u64 LE; beyond 2^53 it is simply huge). */
function dataLength(header: Uint8Array): number {
  return u32(header, 0) + u32(header, 4) * 2 ** 32;
}

function headerIsValid(header: Uint8Array): boolean {
  return u32(header, 8) === maskedCrc32c(header.subarray(0, 8));
}

export const tfrecordFramer: Framer = {
  frame(window: Uint8Array): Span[] {
    const spans: Span[] = [];
    let start = 0;
    while (window.length - start >= HEADER_BYTES) {
      const header = window.subarray(start, start + HEADER_BYTES);
      if (!headerIsValid(header)) {
        spans.push({ start, end: start + HEADER_BYTES, next: start + HEADER_BYTES });
        break; // nothing after a bad length can be framed
      }
      const end = start + HEADER_BYTES + dataLength(header) + FOOTER_BYTES;
      if (end > window.length) break;
      spans.push({ start, end, next: end });
      start = end;
    }
    return spans;
  },
  // A record's end is found by counting, not by a delimiter in the chunk: always worth a look.
  mayComplete: () => true,
  skipper(head: Uint8Array, seen: number): Skipper {
    let left = head.length >= HEADER_BYTES ? HEADER_BYTES + dataLength(head) + FOOTER_BYTES - seen : 0;
    return (bytes) => {
      if (bytes.length < left) {
        left -= bytes.length;
        return undefined;
      }
      return left;
    };
  },
  // The bytes before a record boundary are a checksum of data we no longer hold: not checkable.
  endsRecord: () => true,
};

export type TfRecord =
  | { kind: 'data'; data: Uint8Array }
  /** The length's checksum is wrong: the rest of the file cannot be framed. */
  | { kind: 'bad-length' }
  /** The data's checksum is wrong: this record is skipped. */
  | { kind: 'bad-data' };

/**
 * One framed record (as tfrecordFramer hands it out) checked and opened. The framer checked the
 * header of every whole record it hands out; a shorter one is a header it found bad.
 */
export function decodeTfRecord(record: Uint8Array): TfRecord {
  if (record.length < HEADER_BYTES + FOOTER_BYTES) return { kind: 'bad-length' };
  const end = record.length - FOOTER_BYTES;
  const data = record.subarray(HEADER_BYTES, end);
  if (u32(record, end) !== maskedCrc32c(data)) return { kind: 'bad-data' };
  return { kind: 'data', data };
}

/** One record framed the TFRecord way (tests and the benchmark write event files with it). */
export function encodeTfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + data.length + FOOTER_BYTES);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, BigInt(data.length), true);
  v.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, HEADER_BYTES);
  v.setUint32(HEADER_BYTES + data.length, maskedCrc32c(data), true);
  return out;
}
