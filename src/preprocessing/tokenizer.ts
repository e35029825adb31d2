/**
 * The BLIP text tokenizer (transformers' slow `BertTokenizer` as BLIP configures it). The code
 * lives in ./tokenizer/, one module per stage; this module keeps the names importable from
 * where they have always been.
 */
export { BlipTokenizer } from './tokenizer/blip-tokenizer.js';
export type {
  AddedTokenInfo,
  AddedTokenSpec,
  BatchEncoding,
  BatchOptions,
  DecodeOptions,
  EncodeOptions,
  Encoding,
  PaddingOption,
  TokenizerLoadOptions,
  TokenizerSettings,
  TruncationOption,
} from './tokenizer/types.js';
