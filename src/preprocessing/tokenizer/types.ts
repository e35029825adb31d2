/**
 * The tokenizer's public option and result types, and the settings read from the checkpoint
 * files. Kept apart from the code so every stage can name them without importing the others.
 */

/**
 * `'auto'` (default): cut to the maximum length (option `maxLength`, else the model maximum)
 * and report it through `onWarning`; `true`: cut silently (transformers' `longest_first` for a
 * single sequence: tokens are dropped from the end, specials kept); `false`: never cut.
 */
export type TruncationOption = boolean | 'auto';

/** `false`: no padding; `'longest'` (or `true`): pad to the longest row; `'max_length'`: pad to `maxLength`. */
export type PaddingOption = false | true | 'longest' | 'max_length';

export interface EncodeOptions {
  /** Add `[CLS]` ... `[SEP]`; default true. */
  addSpecialTokens?: boolean;
  /** Default `'auto'`. */
  truncation?: TruncationOption;
  /** Length limit including the special tokens; default the tokenizer's `modelMaxLength`. */
  maxLength?: number;
  /** Overrides the tokenizer's warning sink for this call. */
  onWarning?: (message: string) => void;
}

export interface BatchOptions extends EncodeOptions {
  /** Default `'longest'`, since a batch has to be rectangular to become a tensor. */
  padding?: PaddingOption;
}

export interface Encoding {
  inputIds: number[];
  /** The token string of every id (`[CLS]`, word pieces, `[SEP]`...). */
  tokens: string[];
  attentionMask: number[];
  /** How many tokens truncation removed (0 when none). */
  truncatedTokens: number;
}

export interface BatchEncoding {
  /** Row-major `dims[0] x dims[1]` int64 ids, ready to be an ONNX `int64` input. */
  inputIds: BigInt64Array;
  /** Row-major `dims[0] x dims[1]` int64 mask (1 = token, 0 = padding). */
  attentionMask: BigInt64Array;
  /** `[batch, sequence length]`. */
  dims: [number, number];
  /** The same ids as plain rows. */
  inputIdsList: number[][];
  /** The same mask as plain rows. */
  attentionMaskList: number[][];
  /** Token strings per row, without padding. */
  tokens: string[][];
  /** How many tokens truncation removed, per row. */
  truncatedTokens: number[];
}

export interface DecodeOptions {
  /** Drop every special token (`[CLS]`, `[SEP]`, `[PAD]`, `[DEC]`, `[ENC]`, ...). Default false. */
  skipSpecialTokens?: boolean;
  /** Default: the checkpoint's `clean_up_tokenization_spaces` (true for BERT/BLIP). */
  cleanUpTokenizationSpaces?: boolean;
}

export interface TokenizerLoadOptions {
  /**
   * Where warnings go (text too long and truncated...). Default: `process.emitWarning` with
   * type `BlipTokenizerWarning`.
   */
  onWarning?: (message: string) => void;
}

/** One added token, as transformers' `AddedToken`, with its id. */
export interface AddedTokenInfo extends AddedTokenSpec {
  id: number;
}

/** The settings the tokenizer ended up with (after reading the files). */
export interface TokenizerSettings {
  doLowerCase: boolean;
  doBasicTokenize: boolean;
  tokenizeChineseChars: boolean;
  /** `null`: follow `doLowerCase`, as in original BERT. */
  stripAccents: boolean | null;
  doSplitOnPunc: boolean;
  neverSplit: string[];
  splitSpecialTokens: boolean;
  modelMaxLength: number;
  paddingSide: 'left' | 'right';
  truncationSide: 'left' | 'right';
  cleanUpTokenizationSpaces: boolean;
  maxInputCharsPerWord: number;
  continuingSubwordPrefix: string;
}

/** One added token, as transformers' `AddedToken` (without its id). */
export interface AddedTokenSpec {
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}
