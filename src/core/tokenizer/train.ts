// BPE training: count pretokens, then learn merges with incremental pair counts (a pair -> words
// index and a lazy max-heap), updating only the words that contain the merged pair.
import { forEachPretoken } from './pretokenize';

const utf8Encoder = new TextEncoder();

export const BYTE_TOKENS = 256;
// A pair seen once is noise, not structure; stopping there also keeps tiny corpora honest.
const MIN_PAIR_COUNT = 2;

/** Counts pretokens over the documents until maxBytes of UTF-8 have been read. */
function countPretokens(documents: Iterable<string>, maxBytes: number, pattern: RegExp): Map<string, number> {
  const counts = new Map<string, number>();
  const countPiece = (piece: string): void => {
    counts.set(piece, (counts.get(piece) ?? 0) + 1);
  };
  let bytesLeft = maxBytes;
  for (const document of documents) {
    if (bytesLeft <= 0) break;
    const text = truncateUtf8(document, bytesLeft);
    bytesLeft -= Buffer.byteLength(text, 'utf8');
    forEachPretoken(text, pattern, countPiece);
  }
  return counts;
}

/** The longest prefix of text (whole code points) that fits in maxBytes of UTF-8. */
function truncateUtf8(text: string, maxBytes: number): string {
  // Each UTF-16 unit is at most 3 UTF-8 bytes, so short texts need no byte count at all.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  while (end < text.length) {
    const codePoint = text.codePointAt(end) ?? 0;
    const size = codePoint < 0x80 ? 1 : codePoint < 0x800 ? 2 : codePoint < 0x10000 ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += codePoint > 0xffff ? 2 : 1;
  }
  return text.slice(0, end);
}

/** Every distinct pretoken as a run of symbols in one flat array, merged in place. */
interface WordTable {
  symbols: Int32Array;
  start: Int32Array;
  length: Int32Array;
  frequency: Float64Array;
}

function buildWordTable(counts: Map<string, number>): WordTable {
  const pieces = [...counts.keys()].map((piece) => utf8Encoder.encode(piece));
  const totalBytes = pieces.reduce((sum, bytes) => sum + bytes.length, 0);
  const table: WordTable = {
    symbols: new Int32Array(totalBytes),
    start: new Int32Array(pieces.length),
    length: new Int32Array(pieces.length),
    frequency: Float64Array.from(counts.values()),
  };
  let offset = 0;
  pieces.forEach((bytes, word) => {
    table.start[word] = offset;
    table.length[word] = bytes.length;
    table.symbols.set(bytes, offset);
    offset += bytes.length;
  });
  return table;
}

/**
 * Max-heap of (count, pair key) with lazy invalidation: an entry may hold a stale, higher count;
 * it is re-pushed with the current count when it reaches the top. Ties go to the smaller key,
 * i.e. the lexicographically smallest (left, right), which makes training reproducible.
 */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.keys.length;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let child = this.keys.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (!this.before(child, parent)) break;
      this.swap(child, parent);
      child = parent;
    }
  }

  /** Removes the top entry and returns [count, key]. Only call when size > 0. */
  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastCount = this.counts.pop() ?? 0;
    const lastKey = this.keys.pop() ?? 0;
    if (this.keys.length > 0) {
      this.counts[0] = lastCount;
      this.keys[0] = lastKey;
      this.siftDown(0);
    }
    return top;
  }

  private siftDown(index: number): void {
    const size = this.keys.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= size) return;
      const right = left + 1;
      const best = right < size && this.before(right, left) ? right : left;
      if (!this.before(best, index)) return;
      this.swap(best, index);
      index = best;
    }
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i];
    const cj = this.counts[j];
    return ci > cj || (ci === cj && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const count = this.counts[i];
    this.counts[i] = this.counts[j];
    this.counts[j] = count;
    const key = this.keys[i];
    this.keys[i] = this.keys[j];
    this.keys[j] = key;
  }
}

/**
 * Incremental pair statistics: counts of each adjacent pair (weighted by word frequency), and for
 * each pair the words that may contain it (stale entries allowed; merging re-checks the word).
 */
class PairIndex {
  readonly counts = new Map<number, number>();
  readonly wordsWith = new Map<number, number[]>();
  readonly heap = new PairHeap();
  /** Pairs whose count rose during the current merge; pushed to the heap once it is done. */
  private raised = new Set<number>();

  constructor(
    table: WordTable,
    readonly keyBase: number,
  ) {
    for (let word = 0; word < table.start.length; word++) {
      const start = table.start[word];
      const end = start + table.length[word];
      for (let i = start; i + 1 < end; i++)
        this.add(table.symbols[i], table.symbols[i + 1], word, table.frequency[word]);
    }
    this.flushRaised();
  }

  add(left: number, right: number, word: number, frequency: number): void {
    const key = left * this.keyBase + right;
    this.counts.set(key, (this.counts.get(key) ?? 0) + frequency);
    this.raised.add(key);
    const words = this.wordsWith.get(key);
    if (words === undefined) this.wordsWith.set(key, [word]);
    else if (words[words.length - 1] !== word) words.push(word);
  }

  remove(left: number, right: number, frequency: number): void {
    const key = left * this.keyBase + right;
    const count = (this.counts.get(key) ?? 0) - frequency;
    if (count > 0) {
      this.counts.set(key, count);
      return;
    }
    // No occurrence is left anywhere, so every word listed for it is stale.
    this.counts.delete(key);
    this.wordsWith.delete(key);
  }

  flushRaised(): void {
    for (const key of this.raised) {
      const count = this.counts.get(key);
      if (count !== undefined) this.heap.push(count, key);
    }
    this.raised.clear();
  }

  /** The most frequent pair key with count >= minCount, or -1 when there is none. */
  popBest(minCount: number): number {
    while (this.heap.size > 0) {
      const [heapCount, key] = this.heap.pop();
      const count = this.counts.get(key);
      if (count === undefined) continue;
      if (count === heapCount) return count >= minCount ? key : -1;
      this.heap.push(count, key); // stale: the true count is lower, so queue it again
    }
    return -1;
  }
}

/**
 * Replaces each (left, right) in one word, left to right without overlap, by merged, updating the
 * neighbour pairs in the index. The left neighbour is read from the already-merged output, so
 * runs like "a a a a" come out exactly as a full recount would.
 */
function mergeWord(
  index: PairIndex,
  table: WordTable,
  word: number,
  left: number,
  right: number,
  merged: number,
): void {
  const symbols = table.symbols;
  const start = table.start[word];
  const end = start + table.length[word];
  const frequency = table.frequency[word];
  let read = start;
  let write = start;
  while (read < end) {
    if (read + 1 < end && symbols[read] === left && symbols[read + 1] === right) {
      if (write > start) {
        const before = symbols[write - 1];
        index.remove(before, left, frequency);
        index.add(before, merged, word, frequency);
      }
      if (read + 2 < end) {
        const after = symbols[read + 2];
        index.remove(right, after, frequency);
        index.add(merged, after, word, frequency);
      }
      index.remove(left, right, frequency);
      symbols[write++] = merged;
      read += 2;
    } else {
      symbols[write++] = symbols[read++];
    }
  }
  table.length[word] = write - start;
}

export type ProgressFn = (merges: number, total: number) => void;

/** Learns up to mergeCount merges; ids 256, 257, ... in the order returned. */
function learnMerges(
  table: WordTable,
  vocabSize: number,
  mergeCount: number,
  onProgress?: ProgressFn,
): [number, number][] {
  const index = new PairIndex(table, vocabSize);
  const visitedAtMerge = new Int32Array(table.start.length).fill(-1);
  const merges: [number, number][] = [];
  const progressEvery = Math.max(1, Math.floor(mergeCount / 100));
  while (merges.length < mergeCount) {
    const key = index.popBest(MIN_PAIR_COUNT);
    if (key < 0) break;
    const left = Math.floor(key / vocabSize);
    const right = key - left * vocabSize;
    const merged = BYTE_TOKENS + merges.length;
    const words = index.wordsWith.get(key) ?? [];
    for (const word of words) {
      // A word may be listed twice; merging it twice would be a no-op but costs a scan.
      if (visitedAtMerge[word] === merges.length) continue;
      visitedAtMerge[word] = merges.length;
      mergeWord(index, table, word, left, right, merged);
    }
    index.flushRaised();
    merges.push([left, right]);
    if (onProgress && merges.length % progressEvery === 0 && merges.length < mergeCount)
      onProgress(merges.length, mergeCount);
  }
  onProgress?.(merges.length, mergeCount); // always once at the end, also when stopping early
  return merges;
}

/** Merges learned from the documents (read up to maxBytes of UTF-8); ids 256, 257, ... in order. */
export function trainMerges(
  documents: Iterable<string>,
  vocabSize: number,
  mergeCount: number,
  maxBytes: number,
  pattern: RegExp,
  onProgress?: ProgressFn,
): [number, number][] {
  return learnMerges(buildWordTable(countPretokens(documents, maxBytes, pattern)), vocabSize, mergeCount, onProgress);
}
