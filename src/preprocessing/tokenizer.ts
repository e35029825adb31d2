/**
 * The BLIP text tokenizer (transformers' slow `BertTokenizer` as BLIP configures it). The code
 * lives in ./tokenizer/, one module per stage; this module keeps the names importable from
 * where they have always been.
 */
import { BlipTokenizer as TokenizerBase } from './tokenizer/blip-tokenizer.js';
import { readTokenizerFiles } from './tokenizer/read-tokenizer-files.js';
import type { TokenizerLoadOptions } from './tokenizer/types.js';

/** The tokenizer with Node's loader: the class in ./tokenizer/blip-tokenizer.ts is platform-neutral. */
export class BlipTokenizer extends TokenizerBase {
  /**
   * Loads the tokenizer from a checkpoint folder, reading whichever of vocab.txt,
   * tokenizer_config.json, special_tokens_map.json, added_tokens.json and tokenizer.json exist,
   * with transformers 4.40's precedence for a slow tokenizer (see tokenizer/tokenizer-files.ts).
   */
  static async fromFolder(dir: string, options: TokenizerLoadOptions = {}): Promise<BlipTokenizer> {
    return new BlipTokenizer(await readTokenizerFiles(dir), options);
  }
}

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
