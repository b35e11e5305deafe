export { BpeTokenizer, SPECIAL_TOKENS, PRETOKENIZER_V1 } from './bpe';
export type { TokenizerJSON, TrainOptions } from './bpe';
