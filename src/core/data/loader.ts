// Seeded batches of blocks for training, and fixed batches for evaluation. The token stream is
// cut into non-overlapping blocks of seq_len+1; each epoch visits every block once in a seeded
// order. The order is recomputed from (seed, epoch), so the cursor is three small numbers.
import { Rng } from '../rng';
import { DataError } from './corpus';
import type { TokenArray } from './shards';

/** JSON-serializable; with the tokens and blockLen it fully determines the next batch. */
export interface DataCursor {
  seed: number;
  epoch: number;
  /** Position in this epoch's permutation of block indices. */
  index: number;
}

export interface Batch {
  /** [batchSize * seq_len] inputs, row-major. */
  x: Int32Array;
  /** [batchSize * seq_len] targets: x shifted left by one. */
  y: Int32Array;
  /** [batchSize * seq_len] per-target loss weights (1 counts, 0 ignored); absent: every target counts. */
  mask?: Float32Array;
}

// Odd, so consecutive epochs get well-separated seeds; not the golden-ratio step that the
// generator's own seeding uses, which would make epoch e+1 the stream of epoch e shifted by one.
const EPOCH_STRIDE = 0x6c8e9cf5;

function epochOrder(seed: number, epoch: number, numBlocks: number): Uint32Array {
  return new Rng((seed + Math.imul(epoch, EPOCH_STRIDE)) >>> 0).permutation(numBlocks);
}

function checkBlockLen(blockLen: number): void {
  if (!Number.isInteger(blockLen) || blockLen < 2)
    throw new RangeError(`blockLen must be an integer >= 2 (seq_len + 1), got ${blockLen}`);
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new RangeError(`batch size must be a positive integer, got ${batchSize}`);
}

/** Copies block `block` into row `row` of x and y (and of mask, from the targets' weights). */
function fillRow(
  tokens: TokenArray,
  blockLen: number,
  block: number,
  row: number,
  x: Int32Array,
  y: Int32Array,
  weights?: Float32Array,
  mask?: Float32Array,
): void {
  const seqLen = blockLen - 1;
  const src = block * blockLen;
  const dst = row * seqLen;
  x.set(tokens.subarray(src, src + seqLen), dst);
  y.set(tokens.subarray(src + 1, src + blockLen), dst);
  if (weights && mask) mask.set(weights.subarray(src + 1, src + blockLen), dst);
}

export class BlockLoader {
  readonly numBlocks: number;
  private readonly tokens: TokenArray;
  private readonly blockLen: number;
  private readonly seed: number;
  private epoch: number;
  private index: number;
  private order: Uint32Array;
  private readonly weights?: Float32Array;

  /**
   * `label` names the data in error messages (e.g. the shard path). When a cursor is given its
   * seed is the one used, since the cursor is what a checkpoint saved. `weights`, laid out as the
   * tokens, gives each token's loss weight as a target (fine-tuning's mask); batches then carry a mask.
   */
  constructor(
    tokens: TokenArray,
    blockLen: number,
    seed: number,
    cursor?: DataCursor,
    label = 'The training data',
    weights?: Float32Array,
  ) {
    this.weights = weights;
    checkBlockLen(blockLen);
    this.tokens = tokens;
    this.blockLen = blockLen;
    this.numBlocks = Math.floor(tokens.length / blockLen);
    if (this.numBlocks === 0) {
      throw new DataError(
        `${label} has ${tokens.length} tokens, too few for one block of seq_len + 1 = ${blockLen} tokens (at least ${blockLen} needed). Use more data or a smaller seq_len.`,
      );
    }
    this.seed = cursor ? cursor.seed : seed;
    this.epoch = cursor ? cursor.epoch : 0;
    this.index = cursor ? cursor.index : 0;
    if (cursor) this.checkCursor(cursor, label);
    this.order = epochOrder(this.seed, this.epoch, this.numBlocks);
  }

  private checkCursor(cursor: DataCursor, label: string): void {
    const ok = [cursor.seed, cursor.epoch, cursor.index].every((v) => Number.isInteger(v) && v >= 0);
    if (!ok || cursor.index > this.numBlocks) {
      throw new DataError(
        `${label} does not match the saved data cursor ${JSON.stringify(cursor)} (${this.numBlocks} blocks now). The data or seq_len changed: start a new run.`,
      );
    }
  }

  nextBatch(batchSize: number): Batch {
    checkBatchSize(batchSize);
    const seqLen = this.blockLen - 1;
    const x = new Int32Array(batchSize * seqLen);
    const y = new Int32Array(batchSize * seqLen);
    const mask = this.weights ? new Float32Array(batchSize * seqLen) : undefined;
    for (let row = 0; row < batchSize; row++) {
      if (this.index >= this.numBlocks) {
        this.epoch++;
        this.index = 0;
        this.order = epochOrder(this.seed, this.epoch, this.numBlocks);
      }
      fillRow(this.tokens, this.blockLen, this.order[this.index++], row, x, y, this.weights, mask);
    }
    return mask ? { x, y, mask } : { x, y };
  }

  /** The position after the last batch returned. */
  cursor(): DataCursor {
    return { seed: this.seed, epoch: this.epoch, index: this.index };
  }

  /** Goes back to a position this loader returned from cursor() (a step abandoned half-way). */
  rewind(to: DataCursor): void {
    if (to.epoch !== this.epoch) this.order = epochOrder(this.seed, to.epoch, this.numBlocks);
    this.epoch = to.epoch;
    this.index = to.index;
  }
}

/**
 * The first blocks in order, as up to maxBatches full batches, so every evaluation of a run sees
 * the same tokens and losses compare. Fewer than batchSize blocks give one smaller batch; none
 * gives no batch at all (the caller decides what to say).
 */
export function evalBatches(tokens: TokenArray, blockLen: number, batchSize: number, maxBatches: number): Batch[] {
  checkBlockLen(blockLen);
  checkBatchSize(batchSize);
  const numBlocks = Math.floor(tokens.length / blockLen);
  const rowsPerBatch = Math.min(batchSize, numBlocks);
  const numBatches = rowsPerBatch === 0 ? 0 : Math.min(maxBatches, Math.floor(numBlocks / rowsPerBatch));
  const seqLen = blockLen - 1;
  const batches: Batch[] = [];
  for (let b = 0; b < numBatches; b++) {
    const x = new Int32Array(rowsPerBatch * seqLen);
    const y = new Int32Array(rowsPerBatch * seqLen);
    for (let row = 0; row < rowsPerBatch; row++) fillRow(tokens, blockLen, b * rowsPerBatch + row, row, x, y);
    batches.push({ x, y });
  }
  return batches;
}
