// Tokenizes every document into train.bin and val.bin in the run directory. Validation is a
// seeded set of whole documents, so no validation text is ever trained on.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../rng';
import { DataError, readDocuments, type CorpusFile, type ReadStats } from './corpus';
import { tokenArrayFor, writeShard, type TokenArray } from './shards';

/** All the dataset needs of a tokenizer (BpeTokenizer fits it). */
export interface TextEncoderLike {
  encode(text: string): number[];
  readonly eotId: number;
  readonly vocabSize: number;
}

export interface DatasetStats {
  documents: number;
  /** Documents held out for validation (a subset of `documents`). */
  valDocuments: number;
  trainTokens: number;
  valTokens: number;
  skippedLines: number;
}

export interface BuildDatasetOptions {
  files: readonly CorpusFile[];
  tokenizer: TextEncoderLike;
  /** Fraction of documents held out, in [0, 1). */
  valFraction: number;
  seed: number;
  outDir: string;
  /** Called every few hundred documents and once at the end; bytes are UTF-8 bytes of text read. */
  onProgress?: (docs: number, bytes: number) => void;
}

const PROGRESS_EVERY = 500;
// Mixed into the seed so the split is not the same random stream as the model init or data order.
const SPLIT_SALT = 0x5eed5a17;

/** Every document's tokens (each followed by EOT) in one growing array, with document starts. */
class TokenStream {
  tokens = new Uint32Array(1 << 20);
  length = 0;
  docStarts: number[] = [];

  push(ids: readonly number[], eotId: number, vocabSize: number): void {
    this.docStarts.push(this.length);
    this.reserve(ids.length + 1);
    for (const id of ids) {
      // A tokenizer bug would otherwise be silently truncated into a uint16 shard.
      if (!(id >= 0 && id < vocabSize && Number.isInteger(id))) {
        throw new RangeError(`tokenizer produced id ${id}, outside its vocabulary of ${vocabSize}`);
      }
      this.tokens[this.length++] = id;
    }
    this.tokens[this.length++] = eotId;
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.tokens.length) return;
    const grown = new Uint32Array(Math.max(this.tokens.length * 2, this.length + extra));
    grown.set(this.tokens.subarray(0, this.length));
    this.tokens = grown;
  }

  docEnd(doc: number): number {
    return doc + 1 < this.docStarts.length ? this.docStarts[doc + 1] : this.length;
  }
}

/** Which documents are held out: round(fraction * n), at least one when 0 < fraction and n >= 2, never all. */
export function chooseValDocuments(numDocs: number, valFraction: number, seed: number): Uint8Array {
  if (!(valFraction >= 0 && valFraction < 1))
    throw new RangeError(`val_fraction must be in [0, 1), got ${valFraction}`);
  const isVal = new Uint8Array(numDocs);
  if (valFraction === 0 || numDocs < 2) return isVal;
  const count = Math.min(numDocs - 1, Math.max(1, Math.round(valFraction * numDocs)));
  const order = new Rng((seed ^ SPLIT_SALT) >>> 0).permutation(numDocs);
  for (let i = 0; i < count; i++) isVal[order[i]] = 1;
  return isVal;
}

function splitTokens(
  stream: TokenStream,
  isVal: Uint8Array,
  vocabSize: number,
): { train: TokenArray; val: TokenArray } {
  let valTokens = 0;
  for (let d = 0; d < isVal.length; d++) if (isVal[d]) valTokens += stream.docEnd(d) - stream.docStarts[d];
  const train = tokenArrayFor(vocabSize, stream.length - valTokens);
  const val = tokenArrayFor(vocabSize, valTokens);
  let trainAt = 0;
  let valAt = 0;
  for (let d = 0; d < isVal.length; d++) {
    const doc = stream.tokens.subarray(stream.docStarts[d], stream.docEnd(d));
    if (isVal[d]) {
      val.set(doc, valAt);
      valAt += doc.length;
    } else {
      train.set(doc, trainAt);
      trainAt += doc.length;
    }
  }
  return { train, val };
}

/** Reads, tokenizes and splits the corpus; writes outDir/train.bin and outDir/val.bin. */
export function buildDataset(opts: BuildDatasetOptions): { trainPath: string; valPath: string; stats: DatasetStats } {
  const { tokenizer, onProgress } = opts;
  const readStats: ReadStats = { documents: 0, skippedLines: 0 };
  const stream = new TokenStream();
  let bytes = 0;
  for (const doc of readDocuments(opts.files, readStats)) {
    stream.push(tokenizer.encode(doc), tokenizer.eotId, tokenizer.vocabSize);
    bytes += Buffer.byteLength(doc);
    if (onProgress && stream.docStarts.length % PROGRESS_EVERY === 0) onProgress(stream.docStarts.length, bytes);
  }
  const numDocs = stream.docStarts.length;
  if (numDocs === 0) {
    throw new DataError(
      `The data (${opts.files.map((f) => f.path).join(', ')}) holds no documents. Pass files with some text in them.`,
    );
  }
  onProgress?.(numDocs, bytes);

  const isVal = chooseValDocuments(numDocs, opts.valFraction, opts.seed);
  const { train, val } = splitTokens(stream, isVal, tokenizer.vocabSize);
  mkdirSync(opts.outDir, { recursive: true });
  const trainPath = join(opts.outDir, 'train.bin');
  const valPath = join(opts.outDir, 'val.bin');
  writeShard(trainPath, train);
  writeShard(valPath, val);
  const stats: DatasetStats = {
    documents: numDocs,
    valDocuments: isVal.reduce((n, v) => n + v, 0),
    trainTokens: train.length,
    valTokens: val.length,
    skippedLines: readStats.skippedLines,
  };
  return { trainPath, valPath, stats };
}
