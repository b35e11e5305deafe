// Seeded inputs for the fuzz tests of every reader of a run folder: random bytes, a valid file cut
// at random offsets, and valid files with bytes flipped, inserted or deleted. The same seed gives
// the same cases, so a failure names a case that can be replayed.
import { Rng } from '../src/core/rng';

export interface FuzzCase {
  /** What was done to the valid input, for the failure message. */
  name: string;
  bytes: Buffer;
}

/**
 * `count` cases derived from `valid` (one or more well-formed files of the reader's format), with
 * a fixed seed. A third are truncations, a third mutations (flip / insert / delete a few bytes,
 * including the JSON-significant ones), a third random bytes of random length up to `maxRandom`.
 */
export function* fuzzCases(valid: readonly Buffer[], count: number, seed = 1, maxRandom = 4096): Generator<FuzzCase> {
  const rng = new Rng(seed);
  const int = (n: number) => rng.int(n);
  const special = Buffer.from('{}[]":,\\\n\r\t0-.eENaInfity\u0000\u00ff');
  for (let i = 0; i < count; i++) {
    const source = valid[int(valid.length)];
    const kind = i % 3;
    if (kind === 0) {
      const at = int(source.length + 1);
      yield { name: `case ${i}: cut at byte ${at} of ${source.length}`, bytes: source.subarray(0, at) };
    } else if (kind === 1) {
      const bytes = Array.from(source);
      const edits = 1 + int(4);
      for (let e = 0; e < edits; e++) {
        const at = int(bytes.length + 1);
        const byte = rng.next() < 0.5 ? special[int(special.length)] : int(256);
        const op = int(3);
        if (op === 0 && at < bytes.length) bytes[at] = byte;
        else if (op === 1) bytes.splice(at, 0, byte);
        else bytes.splice(at, 1);
      }
      yield { name: `case ${i}: ${edits} byte edits`, bytes: Buffer.from(bytes) };
    } else {
      const bytes = Buffer.alloc(int(maxRandom + 1));
      for (let b = 0; b < bytes.length; b++) bytes[b] = int(256);
      yield { name: `case ${i}: ${bytes.length} random bytes`, bytes };
    }
  }
}
