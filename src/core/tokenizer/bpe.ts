// Byte-level BPE, GPT-2/Qwen style, tuned for Chinese text. Ids 0..255 are the raw bytes, so any
// UTF-8 round-trips exactly; learned merges follow in order; the three specials take the last three
// ids. The requested vocab size is always the vocab size: if the corpus runs out of pairs worth
// merging (count >= 2), the ids between the last merge and the specials are simply never produced
// (they decode to no bytes), so the model's embedding shape never depends on the corpus.

import {
  DEFAULT_PRETOKENIZER,
  forEachPretoken,
  PRETOKENIZER_V1,
  PRETOKENIZERS,
  pretokenizerId,
  pretokenizerPattern,
  type PretokenizerId,
} from './pretokenize';
import { BYTE_TOKENS, trainMerges, type ProgressFn } from './train';

export { PRETOKENIZER_V1, PRETOKENIZERS, type PretokenizerId };
export const SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] as const;

export interface TokenizerJSON {
  format: 'steelscope.tokenizer/1';
  type: 'byte-bpe';
  vocab_size: number;
  /** merges[i] = [left, right] creates id 256 + i. */
  merges: [number, number][];
  /** Special string -> id; always the last three ids, in SPECIAL_TOKENS order. */
  specials: Record<string, number>;
  /** Pre-tokenizer id from PRETOKENIZERS (older files carry the pattern of one of them). */
  pretokenizer: PretokenizerId;
}

const FORMAT = 'steelscope.tokenizer/1';

/** A tokenizer file that is not one we can load; the message names the field. */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}
const MIN_VOCAB = BYTE_TOKENS + SPECIAL_TOKENS.length;
// Keeps pair keys (left * vocabSize + right) exact in a double and the tables a sane size.
const MAX_VOCAB = 1 << 20;
const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;
const CACHE_LIMIT = 1 << 16;
const CACHE_MAX_PIECE = 64; // UTF-16 units; longer pieces are rare and not worth keeping

const utf8Encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

const HEAP_POSITION_BASE = 4294967296; // 2^32: heap entry = mergedId * 2^32 + position

/**
 * Applies merges to one pretoken's bytes in rank order (lowest merged id first, leftmost first
 * among equals), exactly as training applied them. A linked list over positions plus a min-heap
 * of candidate merges keeps this O(n log n), so a huge unpunctuated run cannot stall encoding.
 */
class PieceMerger {
  private symbols = new Int32Array(64);
  private next = new Int32Array(64);
  private prev = new Int32Array(64);
  private heap = new Float64Array(192);
  private heapSize = 0;

  constructor(
    private readonly mergedIdOf: Map<number, number>,
    private readonly keyBase: number,
  ) {}

  merge(bytes: Uint8Array, count: number, out: number[]): void {
    if (count === 0) return;
    this.reserve(count);
    const { symbols, next, prev } = this;
    this.heapSize = 0;
    for (let i = 0; i < count; i++) {
      symbols[i] = bytes[i];
      next[i] = i + 1 < count ? i + 1 : -1;
      prev[i] = i - 1;
    }
    for (let i = 0; i + 1 < count; i++) this.offer(i, symbols[i], symbols[i + 1]);
    while (this.heapSize > 0) {
      const entry = this.popMin();
      const mergedId = Math.floor(entry / HEAP_POSITION_BASE);
      const position = entry - mergedId * HEAP_POSITION_BASE;
      const right = next[position];
      // Stale if this position was absorbed into its left neighbour or its pair changed since.
      if (symbols[position] < 0 || right < 0) continue;
      if (this.mergedIdOf.get(symbols[position] * this.keyBase + symbols[right]) !== mergedId) continue;
      this.join(position, right, mergedId);
    }
    for (let i = 0; i >= 0; i = next[i]) out.push(symbols[i]);
  }

  private join(position: number, right: number, mergedId: number): void {
    const { symbols, next, prev } = this;
    symbols[position] = mergedId;
    symbols[right] = -1;
    const after = next[right];
    next[position] = after;
    if (after >= 0) prev[after] = position;
    const before = prev[position];
    if (before >= 0) this.offer(before, symbols[before], mergedId);
    if (after >= 0) this.offer(position, mergedId, symbols[after]);
  }

  private offer(position: number, left: number, right: number): void {
    const mergedId = this.mergedIdOf.get(left * this.keyBase + right);
    if (mergedId !== undefined) this.pushHeap(mergedId * HEAP_POSITION_BASE + position);
  }

  private reserve(count: number): void {
    if (count <= this.symbols.length) return;
    const capacity = Math.max(count, this.symbols.length * 2);
    this.symbols = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.heap = new Float64Array(capacity * 3); // count - 1 initial pairs + at most 2 per merge
  }

  private pushHeap(value: number): void {
    const heap = this.heap;
    let child = this.heapSize++;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if (heap[parent] <= value) break;
      heap[child] = heap[parent];
      child = parent;
    }
    heap[child] = value;
  }

  private popMin(): number {
    const heap = this.heap;
    const top = heap[0];
    const last = heap[--this.heapSize];
    let index = 0;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= this.heapSize) break;
      if (child + 1 < this.heapSize && heap[child + 1] < heap[child]) child++;
      if (heap[child] >= last) break;
      heap[index] = heap[child];
      index = child;
    }
    heap[index] = last;
    return top;
  }
}

// ---------------------------------------------------------------------------------------------
// The tokenizer
// ---------------------------------------------------------------------------------------------

const SPECIAL_PATTERN = new RegExp(SPECIAL_TOKENS.map((s) => s.replace(/[|]/g, '\\|')).join('|'), 'g');

export interface TrainOptions {
  /** Stop reading documents after this many UTF-8 bytes (the last one is cut). Default 4 MiB. */
  maxBytes?: number;
  /** Called about 100 times during training, and once at the end. */
  onProgress?: ProgressFn;
}

export class BpeTokenizer {
  /** Exactly the requested size; ids from 256 + mergeCount up to eotId - 1 may be unused. */
  readonly vocabSize: number;
  readonly eotId: number;
  readonly imStartId: number;
  readonly imEndId: number;
  private readonly merges: readonly [number, number][];
  private readonly pretokenizerId: PretokenizerId;
  private readonly pretokenizer: RegExp;
  /** Bytes of every id; empty for the unused ids between the merges and the specials. */
  private readonly tokenBytes: Uint8Array[];
  private readonly merger: PieceMerger;
  private readonly pieceCache = new Map<string, number[]>();
  private encodeBuffer = new Uint8Array(256);

  private constructor(vocabSize: number, merges: readonly [number, number][], pretokenizer: PretokenizerId) {
    this.vocabSize = vocabSize;
    this.eotId = vocabSize - 3;
    this.imStartId = vocabSize - 2;
    this.imEndId = vocabSize - 1;
    this.merges = merges;
    this.pretokenizerId = pretokenizer;
    this.pretokenizer = pretokenizerPattern(pretokenizer);
    this.tokenBytes = buildTokenBytes(vocabSize, merges);
    const mergedIdOf = new Map<number, number>();
    merges.forEach(([left, right], rank) => mergedIdOf.set(left * vocabSize + right, BYTE_TOKENS + rank));
    this.merger = new PieceMerger(mergedIdOf, vocabSize);
  }

  /**
   * Learns merges from the documents (read up to opts.maxBytes). Deterministic: the same documents
   * and vocabSize give the same merges. vocabSize counts the 256 bytes and the 3 specials.
   */
  static train(documents: Iterable<string>, vocabSize: number, opts: TrainOptions = {}): BpeTokenizer {
    checkVocabSize(vocabSize);
    const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    if (!(maxBytes >= 0)) throw new Error(`tokenizer: maxBytes must be >= 0, got ${maxBytes}`);
    const merges = trainMerges(
      documents,
      vocabSize,
      vocabSize - MIN_VOCAB,
      maxBytes,
      pretokenizerPattern(DEFAULT_PRETOKENIZER),
      opts.onProgress,
    );
    return new BpeTokenizer(vocabSize, merges, DEFAULT_PRETOKENIZER);
  }

  /** Rebuilds a tokenizer saved by toJSON; throws an Error naming the first problem found. */
  static fromJSON(json: unknown): BpeTokenizer {
    const { vocabSize, merges, pretokenizer } = validateTokenizerJSON(json);
    return new BpeTokenizer(vocabSize, merges, pretokenizer);
  }

  toJSON(): TokenizerJSON {
    const specials: Record<string, number> = {};
    SPECIAL_TOKENS.forEach((token, i) => (specials[token] = this.eotId + i));
    return {
      format: FORMAT,
      type: 'byte-bpe',
      vocab_size: this.vocabSize,
      merges: this.merges.map(([left, right]): [number, number] => [left, right]),
      specials,
      pretokenizer: this.pretokenizerId,
    };
  }

  /** Number of learned merges (<= vocabSize - 259; fewer when the corpus ran out of pairs). */
  get mergeCount(): number {
    return this.merges.length;
  }

  /**
   * Token ids of text. With allowSpecial, the three special strings become their ids; without it
   * they are ordinary text, so untrusted input can never forge a special token.
   */
  encode(text: string, opts: { allowSpecial?: boolean } = {}): number[] {
    const ids: number[] = [];
    if (!opts.allowSpecial) {
      this.encodeOrdinary(text, ids);
      return ids;
    }
    let textStart = 0;
    for (const match of text.matchAll(SPECIAL_PATTERN)) {
      const index = match.index ?? 0;
      this.encodeOrdinary(text.slice(textStart, index), ids);
      ids.push(this.eotId + SPECIAL_TOKENS.indexOf(match[0] as (typeof SPECIAL_TOKENS)[number]));
      textStart = index + match[0].length;
    }
    this.encodeOrdinary(text.slice(textStart), ids);
    return ids;
  }

  /** Text of the ids; bytes that are not valid UTF-8 become U+FFFD, as TextDecoder does. */
  decode(ids: readonly number[]): string {
    return new TextDecoder('utf-8').decode(this.decodeBytes(ids));
  }

  /** Raw bytes of the ids (a token may end inside a multi-byte character). */
  decodeBytes(ids: readonly number[]): Uint8Array {
    let total = 0;
    for (const id of ids) total += this.bytesOf(id).length;
    const out = new Uint8Array(total);
    let offset = 0;
    for (const id of ids) {
      const bytes = this.bytesOf(id);
      out.set(bytes, offset);
      offset += bytes.length;
    }
    return out;
  }

  /** Readable form of one token: its text with control bytes and broken UTF-8 shown as \xNN. */
  tokenString(id: number): string {
    const bytes = this.bytesOf(id);
    if (id >= this.eotId) return SPECIAL_TOKENS[id - this.eotId];
    if (bytes.length === 0) return `<|unused:${id}|>`;
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      return Array.from(bytes, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : hexByte(b))).join('');
    }
    return text.replace(/[\x00-\x1f\x7f]/g, (c) => hexByte(c.charCodeAt(0)));
  }

  private bytesOf(id: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.tokenBytes[id] : undefined;
    if (bytes === undefined) throw new RangeError(`tokenizer: id ${id} is not in 0..${this.vocabSize - 1}`);
    return bytes;
  }

  private encodeOrdinary(text: string, ids: number[]): void {
    if (text.length === 0) return;
    forEachPretoken(text, this.pretokenizer, (piece) => this.encodePiece(piece, ids));
  }

  private encodePiece(piece: string, ids: number[]): void {
    const cached = this.pieceCache.get(piece);
    if (cached !== undefined) {
      for (const id of cached) ids.push(id);
      return;
    }
    if (this.encodeBuffer.length < piece.length * 3) this.encodeBuffer = new Uint8Array(piece.length * 3);
    const { written } = utf8Encoder.encodeInto(piece, this.encodeBuffer);
    if (piece.length > CACHE_MAX_PIECE) {
      this.merger.merge(this.encodeBuffer, written, ids);
      return;
    }
    const pieceIds: number[] = [];
    this.merger.merge(this.encodeBuffer, written, pieceIds);
    // Clearing everything when full is crude but bounded, and hot pieces come back at once.
    if (this.pieceCache.size >= CACHE_LIMIT) this.pieceCache.clear();
    this.pieceCache.set(piece, pieceIds);
    for (const id of pieceIds) ids.push(id);
  }
}

function hexByte(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, '0')}`;
}

function buildTokenBytes(vocabSize: number, merges: readonly [number, number][]): Uint8Array[] {
  const tokenBytes: Uint8Array[] = [];
  for (let byte = 0; byte < BYTE_TOKENS; byte++) tokenBytes.push(Uint8Array.of(byte));
  for (const [left, right] of merges) {
    const a = tokenBytes[left];
    const b = tokenBytes[right];
    const joined = new Uint8Array(a.length + b.length);
    joined.set(a);
    joined.set(b, a.length);
    tokenBytes.push(joined);
  }
  const empty = new Uint8Array(0);
  while (tokenBytes.length < vocabSize - SPECIAL_TOKENS.length) tokenBytes.push(empty);
  for (const token of SPECIAL_TOKENS) tokenBytes.push(utf8Encoder.encode(token));
  return tokenBytes;
}

function checkVocabSize(vocabSize: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < MIN_VOCAB || vocabSize > MAX_VOCAB) {
    throw new TokenizerError(
      `tokenizer: vocab_size must be an integer in ${MIN_VOCAB}..${MAX_VOCAB}, got ${vocabSize}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Validation of saved tokenizers
// ---------------------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Checks every field of a saved tokenizer; the error names the field and what was wrong. */
function validateTokenizerJSON(json: unknown): {
  vocabSize: number;
  merges: [number, number][];
  pretokenizer: PretokenizerId;
} {
  if (!isRecord(json)) throw new TokenizerError('tokenizer JSON: expected an object');
  if (json.format !== FORMAT)
    throw new TokenizerError(`tokenizer JSON: format must be "${FORMAT}", got ${JSON.stringify(json.format)}`);
  if (json.type !== 'byte-bpe')
    throw new TokenizerError(`tokenizer JSON: type must be "byte-bpe", got ${JSON.stringify(json.type)}`);
  const vocabSize = json.vocab_size;
  if (typeof vocabSize !== 'number') throw new TokenizerError('tokenizer JSON: vocab_size must be a number');
  checkVocabSize(vocabSize);
  const merges = validateMerges(json.merges, vocabSize);
  validateSpecials(json.specials, vocabSize);
  const pretokenizer = pretokenizerId(json.pretokenizer);
  if (pretokenizer === undefined) {
    const shown =
      typeof json.pretokenizer === 'string' ? JSON.stringify(json.pretokenizer.slice(0, 40)) : typeof json.pretokenizer;
    throw new TokenizerError(
      `tokenizer JSON: pretokenizer must be one of ${Object.keys(PRETOKENIZERS).join(', ')}, got ${shown}`,
    );
  }
  return { vocabSize, merges, pretokenizer };
}

function validateMerges(value: unknown, vocabSize: number): [number, number][] {
  if (!Array.isArray(value)) throw new TokenizerError('tokenizer JSON: merges must be an array');
  const maxMerges = vocabSize - MIN_VOCAB;
  if (value.length > maxMerges) {
    throw new TokenizerError(
      `tokenizer JSON: ${value.length} merges do not fit vocab_size ${vocabSize} (at most ${maxMerges})`,
    );
  }
  const seen = new Set<number>();
  return value.map((merge: unknown, rank): [number, number] => {
    const newId = BYTE_TOKENS + rank;
    const isIdBelowNew = (x: unknown): x is number =>
      Number.isInteger(x) && (x as number) >= 0 && (x as number) < newId;
    if (!Array.isArray(merge) || merge.length !== 2 || !isIdBelowNew(merge[0]) || !isIdBelowNew(merge[1])) {
      throw new TokenizerError(
        `tokenizer JSON: merges[${rank}] must be [left, right] with integer ids below ${newId}, got ${JSON.stringify(merge)}`,
      );
    }
    const key = merge[0] * vocabSize + merge[1];
    if (seen.has(key))
      throw new TokenizerError(`tokenizer JSON: merges[${rank}] repeats the pair ${JSON.stringify(merge)}`);
    seen.add(key);
    return [merge[0], merge[1]];
  });
}

function validateSpecials(value: unknown, vocabSize: number): void {
  if (!isRecord(value)) throw new TokenizerError('tokenizer JSON: specials must be an object');
  const expected = SPECIAL_TOKENS.map((token, i) => `${token}=${vocabSize - SPECIAL_TOKENS.length + i}`).join(', ');
  const keys = Object.keys(value);
  const matches =
    keys.length === SPECIAL_TOKENS.length &&
    SPECIAL_TOKENS.every((token, i) => value[token] === vocabSize - SPECIAL_TOKENS.length + i);
  if (!matches)
    throw new TokenizerError(`tokenizer JSON: specials must be exactly {${expected}}, got ${JSON.stringify(value)}`);
}
