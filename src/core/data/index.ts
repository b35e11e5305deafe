// The data pipeline: corpus files -> documents -> token shards -> seeded batches.
export {
  builtAsset,
  checkDocuments,
  DataError,
  defaultCorpusPath,
  resolveCorpus,
  readDocuments,
  BUNDLED_DATA,
} from './corpus';
export { verifyCorpus } from './bundled';
export type { CorpusFile, ReadStats } from './corpus';
export { writeShard, readShard, tokenArrayFor } from './shards';
export type { TokenArray } from './shards';
export { buildDataset, chooseValDocuments } from './dataset';
export type { TextEncoderLike, DatasetStats, BuildDatasetOptions } from './dataset';
export { BlockLoader, evalBatches } from './loader';
export type { DataCursor, Batch } from './loader';
