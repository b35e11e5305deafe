export { BpeTokenizer, SPECIAL_TOKENS, PRETOKENIZER_V1, PRETOKENIZERS, TokenizerError } from './bpe';
export type { PretokenizerId, TokenizerJSON, TrainOptions } from './bpe';
