/**
 * The BLIP text tokenizer: a port of transformers 4.40.2's slow (pure-Python) `BertTokenizer`
 * (uncased WordPiece) configured the way BLIP configures it, loaded from a checkpoint folder.
 *
 * Pipeline for one text, in the order transformers runs it (`PreTrainedTokenizer.tokenize`):
 *  1. lower-casing pre-pass (only when `do_lower_case` and `do_basic_tokenize`): every code point
 *     is lower-cased on its own, except where a special-token string (or a non-special,
 *     "normalized" added token) occurs verbatim, case-sensitively;
 *  2. added-token split: every added/special token string typed in the text (`[CLS]`, `[PAD]`,
 *     `[DEC]`, ...) is cut out (leftmost, longest match) and becomes its id directly, honouring
 *     the token's lstrip / rstrip / single_word flags;
 *  3. on the remaining pieces, `BasicTokenizer`: delete NUL, U+FFFD and every category C*
 *     character except \t \n \r; turn \t \n \r and category Zs into spaces; put spaces around CJK
 *     ideographs; NFC; split on whitespace; per word: lower-case, NFD + drop Mn (strip_accents
 *     null follows lower-casing); split off every punctuation character;
 *  4. `WordpieceTokenizer`: greedy longest match with the `##` prefix, words longer than 100 code
 *     points (or with no match) become `[UNK]`;
 *  5. tokens to ids (added tokens first, then the vocabulary, else the `[UNK]` id), truncation,
 *     `[CLS] ... [SEP]`, padding.
 *
 * Configuration is read from the folder's files with transformers' precedence (see `fromFolder`).
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import { CheckpointError, UsageError } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Character classes (transformers' _is_whitespace / _is_control / _is_punctuation)
// ---------------------------------------------------------------------------------------------

/**
 * transformers' `_is_control` is `unicodedata.category(c).startswith("C")` except \t \n \r:
 * Cc and Cf (NUL, BEL, ESC, zero-width space/joiner, BOM, ...), but also Co, Cs and Cn.
 * Together with NUL and U+FFFD these are deleted (not turned into spaces).
 */
const DELETED_CHARS = /[\u0000\uFFFD]|(?![\t\n\r])\p{C}/gu;
/** `_is_whitespace`: space, \t, \n, \r and category Zs; each becomes one space. */
const WHITESPACE_CHARS = /[\t\n\r\p{Zs}]/gu;
/**
 * Python's `str.split()` / `str.strip()` whitespace (`str.isspace`): after cleaning, this only
 * adds U+2028 / U+2029 (categories Zl, Zp), which therefore still separate words.
 */
const PY_WHITESPACE_RUN = /[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const PY_WHITESPACE_LEADING = /^[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;
const PY_WHITESPACE_TRAILING = /[\t\n\v\f\r\u001c-\u001f \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u;
/** The code-point blocks BERT's `_is_chinese_char` treats as CJK ideographs (one token each). */
const CJK_CHARS =
  /[\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{F900}-\u{FAFF}\u{2F800}-\u{2FA1F}]/gu;
/** `_is_punctuation`: ASCII 33-47, 58-64, 91-96, 123-126, and Unicode category P*. */
const PUNCTUATION_CHAR = /^(?:[\u0021-\u002f\u003a-\u0040\u005b-\u0060\u007b-\u007e]|\p{P})$/u;
const NONSPACING_MARKS = /\p{Mn}/gu;

function pySplit(text: string): string[] {
  return text.split(PY_WHITESPACE_RUN).filter((s) => s.length > 0);
}

function pyLStrip(text: string): string {
  return text.replace(PY_WHITESPACE_LEADING, '');
}

function pyRStrip(text: string): string {
  return text.replace(PY_WHITESPACE_TRAILING, '');
}

function isPunctuation(ch: string): boolean {
  return PUNCTUATION_CHAR.test(ch);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\\/]/g, '\\$&');
}

// ---------------------------------------------------------------------------------------------
// Added-token trie (transformers' `Trie.split`: leftmost match, longest at that position)
// ---------------------------------------------------------------------------------------------

interface TrieNode {
  next: Map<string, TrieNode>;
  terminal: boolean;
}

class TokenTrie {
  private readonly root: TrieNode = { next: new Map(), terminal: false };
  private empty = true;

  add(word: string): void {
    if (word.length === 0) return;
    let node = this.root;
    for (let i = 0; i < word.length; i++) {
      const c = word[i];
      let child = node.next.get(c);
      if (!child) {
        child = { next: new Map(), terminal: false };
        node.next.set(c, child);
      }
      node = child;
    }
    node.terminal = true;
    this.empty = false;
  }

  /** Cuts `text` at the boundaries of every match; keeps the text between matches (maybe empty). */
  split(text: string): string[] {
    if (this.empty) return [text];
    const out: string[] = [];
    let last = 0;
    let i = 0;
    while (i < text.length) {
      let node: TrieNode | undefined = this.root;
      let end = -1;
      for (let j = i; j < text.length; j++) {
        node = node.next.get(text[j]);
        if (!node) break;
        if (node.terminal) end = j + 1;
      }
      if (end > 0) {
        if (i > last) out.push(text.slice(last, i));
        out.push(text.slice(i, end));
        last = end;
        i = end;
      } else {
        i++;
      }
    }
    if (last < text.length || out.length === 0) out.push(text.slice(last));
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// File reading helpers
// ---------------------------------------------------------------------------------------------

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function readOptional(file: string): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new CheckpointError(file, `cannot be read (${code ?? String(err)})`, { cause: err });
  }
}

function decodeUtf8(file: string, bytes: Buffer): string {
  try {
    // ignoreBOM: keep a BOM as a character, as Python's "utf-8" codec does.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    throw new CheckpointError(file, 'is not valid UTF-8', { cause: err });
  }
}

function parseJsonObject(file: string, bytes: Buffer): JsonObject {
  let text = decodeUtf8(file, bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(file, `malformed JSON (${(err as Error).message})`, { cause: err });
  }
  if (!isObject(value)) throw new CheckpointError(file, 'expected a JSON object at the top level');
  return value;
}

function optBool(file: string, obj: JsonObject, key: string, dflt: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new CheckpointError(file, `"${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Special-token values as they appear in the files
// ---------------------------------------------------------------------------------------------

/** A special-token value: a plain string or an `AddedToken` description. */
type SpecialValue = string | AddedTokenSpec;

export interface AddedTokenSpec {
  content: string;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** transformers' `AddedToken(**dict)`: normalized defaults to `not special`. */
function addedTokenFromJson(file: string, where: string, v: Json, forceSpecial = false): AddedTokenSpec {
  if (!isObject(v) || typeof v.content !== 'string') {
    throw new CheckpointError(file, `${where}: expected an added-token object with a string "content"`);
  }
  const flag = (key: string, dflt: boolean): boolean => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    if (typeof x !== 'boolean') throw new CheckpointError(file, `${where}: "${key}" must be a boolean`);
    return x;
  };
  const special = forceSpecial || flag('special', false);
  return {
    content: v.content,
    singleWord: flag('single_word', false),
    lstrip: flag('lstrip', false),
    rstrip: flag('rstrip', false),
    normalized: flag('normalized', !special),
    special,
  };
}

function specialValueFromJson(file: string, key: string, v: Json, forceSpecial: boolean): SpecialValue | null {
  if (v === null) return null;
  if (typeof v === 'string') return v;
  return addedTokenFromJson(file, `"${key}"`, v, forceSpecial);
}

function contentOf(v: SpecialValue): string {
  return typeof v === 'string' ? v : v.content;
}

/** transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order (which decides the ids of new specials). */
const SINGLE_SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
type SingleSpecialKey = (typeof SINGLE_SPECIAL_KEYS)[number];

/** BertTokenizer's constructor defaults. */
const BERT_SPECIAL_DEFAULTS: Record<SingleSpecialKey, string | null> = {
  bos_token: null,
  eos_token: null,
  unk_token: '[UNK]',
  sep_token: '[SEP]',
  pad_token: '[PAD]',
  cls_token: '[CLS]',
  mask_token: '[MASK]',
};

/**
 * transformers uses this as "no limit" (1e30) when a tokenizer_config has no model_max_length.
 * The BLIP text model has 512 positions, so that is our fallback.
 */
const DEFAULT_MODEL_MAX_LENGTH = 512;

/** BLIP's extra tokens and the order BLIP's `init_tokenizer` adds them in. */
const BLIP_DEC = '[DEC]';
const BLIP_ENC = '[ENC]';

function defaultWarning(message: string): void {
  process.emitWarning(message, { type: 'BlipTokenizerWarning' });
}

// ---------------------------------------------------------------------------------------------
// The tokenizer
// ---------------------------------------------------------------------------------------------

interface TokenizerParts {
  vocab: Map<string, number>;
  idToVocabToken: Map<number, string>;
  addedDecoder: Map<number, AddedTokenSpec>;
  specials: Record<SingleSpecialKey, SpecialValue | null>;
  additionalSpecials: SpecialValue[];
  settings: TokenizerSettings;
  /**
   * Loaded from tokenizer.json alone: follow the fast tokenizer, where an added token with
   * `normalized: false` is matched in the raw text (so it is also kept out of lower-casing).
   */
  fastAddedTokenSemantics: boolean;
  /** The file named in errors about the special tokens. */
  configFile: string;
  onWarning: (message: string) => void;
}

export class BlipTokenizer {
  /** Settings read from the checkpoint files. */
  readonly settings: Readonly<TokenizerSettings>;
  /** Default length limit (including `[CLS]`/`[SEP]`): the checkpoint's `model_max_length`. */
  readonly modelMaxLength: number;

  readonly padTokenId: number;
  readonly unkTokenId: number;
  readonly clsTokenId: number;
  readonly sepTokenId: number;
  /** `undefined` when the checkpoint defines no mask token. */
  readonly maskTokenId: number | undefined;
  /** The checkpoint's bos token id (`[DEC]` in BLIP-built tokenizers), if it names one. */
  readonly bosTokenId: number | undefined;
  /** `[DEC]`, BLIP's decoder-start token (30522 for the BERT vocabulary). */
  readonly decTokenId: number;
  /** `[ENC]`, which original BLIP puts in place of `[CLS]` for image-text matching (30523). */
  readonly encTokenId: number;
  /**
   * True when the files do not define `[DEC]`/`[ENC]` (the real Hub repos) and their ids were
   * derived the way BLIP adds them; such ids are not recognised when typed in text.
   */
  readonly blipTokensImplicit: boolean;

  private readonly vocab: Map<string, number>;
  private readonly idToVocabToken: Map<number, string>;
  private readonly addedDecoder: Map<number, AddedTokenSpec>;
  private readonly addedEncoder: Map<string, number>;
  private readonly trie: TokenTrie;
  private readonly lowerCasePattern: RegExp | null;
  private readonly allSpecialTokens: string[];
  private readonly allSpecialIds: Set<number>;
  private readonly neverSplit: Set<string>;
  private readonly basicNeverSplit: Set<string>;
  private readonly implicitTokens: Map<number, string>;
  private readonly onWarning: (message: string) => void;

  private constructor(parts: TokenizerParts) {
    this.vocab = parts.vocab;
    this.idToVocabToken = parts.idToVocabToken;
    this.settings = parts.settings;
    this.modelMaxLength = parts.settings.modelMaxLength;
    this.onWarning = parts.onWarning;

    // PreTrainedTokenizer.__init__: the added tokens from the files, then every special token
    // not yet among them is added (`_add_tokens(..., special_tokens=True)`), in attribute order.
    this.addedDecoder = new Map(parts.addedDecoder);
    this.addedEncoder = new Map();
    for (const [id, tok] of this.addedDecoder) this.addedEncoder.set(tok.content, id);

    const extended: SpecialValue[] = [];
    const seen = new Set<string>();
    const pushSpecial = (v: SpecialValue | null) => {
      if (v === null) return;
      const c = contentOf(v);
      if (seen.has(c)) return;
      seen.add(c);
      extended.push(v);
    };
    for (const key of SINGLE_SPECIAL_KEYS) pushSpecial(parts.specials[key]);
    for (const v of parts.additionalSpecials) pushSpecial(v);

    const distinct = new Set<string>([...this.vocab.keys(), ...this.addedEncoder.keys()]);
    const newBase = distinct.size;
    let added = 0;
    for (const v of extended) {
      if (contentOf(v) === '') continue;
      let tok: AddedTokenSpec;
      if (typeof v === 'string') {
        if (this.addedEncoder.has(v)) continue;
        tok = { content: v, singleWord: false, lstrip: false, rstrip: false, normalized: false, special: true };
      } else {
        tok = { ...v, special: true };
      }
      let id: number;
      if (distinct.has(tok.content)) {
        id = this.addedEncoder.get(tok.content) ?? (this.vocab.get(tok.content) as number);
      } else {
        id = newBase + added;
        added++;
        distinct.add(tok.content);
      }
      this.addedDecoder.set(id, tok);
      this.addedEncoder.set(tok.content, id);
    }

    this.trie = new TokenTrie();
    for (const tok of this.addedDecoder.values()) this.trie.add(tok.content);

    this.allSpecialTokens = extended.map(contentOf);
    // Every special token has an id by now (the loop above added the missing ones).
    const idOf = (t: string): number => this.tokenToId(t) ?? this.unkTokenId;
    const unk = parts.specials.unk_token;
    if (unk === null) throw new CheckpointError(parts.configFile, 'unk_token must not be null');
    const unkId = this.tokenToId(contentOf(unk));
    if (unkId === undefined) throw new CheckpointError(parts.configFile, `unk_token ${JSON.stringify(contentOf(unk))} has no id`);
    this.unkTokenId = unkId;
    const required = (key: SingleSpecialKey): number => {
      const v = parts.specials[key];
      if (v === null) throw new CheckpointError(parts.configFile, `${key} must not be null for a BERT tokenizer`);
      return idOf(contentOf(v));
    };
    this.clsTokenId = required('cls_token');
    this.sepTokenId = required('sep_token');
    this.padTokenId = required('pad_token');
    const optional = (key: SingleSpecialKey): number | undefined => {
      const v = parts.specials[key];
      return v === null ? undefined : idOf(contentOf(v));
    };
    this.maskTokenId = optional('mask_token');
    this.bosTokenId = optional('bos_token');
    this.allSpecialIds = new Set(this.allSpecialTokens.map(idOf));

    // Lower-casing pre-pass (`hasattr(self, "do_lower_case") and self.do_lower_case`; BertTokenizer's
    // property is the basic tokenizer's flag, which does not exist when do_basic_tokenize is off).
    const s = parts.settings;
    if (s.doLowerCase && s.doBasicTokenize) {
      const protectedStrings = [...this.allSpecialTokens];
      for (const tok of this.addedDecoder.values()) {
        if (!tok.special && tok.normalized) protectedStrings.push(tok.content);
        else if (parts.fastAddedTokenSemantics && !tok.normalized) protectedStrings.push(tok.content);
      }
      const alternatives = protectedStrings.filter((x) => x.length > 0).map(escapeRegExp);
      // Python's `(specials)|(.+?)` in order; `.` matches one code point except "\n".
      this.lowerCasePattern = new RegExp(
        alternatives.length > 0 ? `(${alternatives.join('|')})|[^\\n]` : '[^\\n]',
        'gu',
      );
    } else {
      this.lowerCasePattern = null;
    }

    this.basicNeverSplit = new Set(s.neverSplit);
    this.neverSplit = new Set([...s.neverSplit, ...this.allSpecialTokens]);

    // BLIP's [DEC]/[ENC]. Original BLIP (and LAVIS) build the tokenizer with
    //   tokenizer.add_special_tokens({'bos_token': '[DEC]'})
    //   tokenizer.add_special_tokens({'additional_special_tokens': ['[ENC]']})
    // on bert-base-uncased, so [DEC] = 30522 and [ENC] = 30523, which is why the checkpoints'
    // word embedding has 30524 rows. A tokenizer saved after doing that (the fixtures) lists both
    // in tokenizer_config.json / added_tokens.json and we take the ids from there. The real Hub
    // repos (Salesforce/blip-itm-*-coco) instead ship a plain BertTokenizer: their
    // special_tokens_map.json and tokenizer_config.json name only [PAD] [UNK] [CLS] [SEP] [MASK]
    // and vocab.txt has 30522 lines, so transformers loading them knows no [DEC]/[ENC] at all
    // (BlipForImageTextRetrieval never needs them: it keeps [CLS] in column 0 for ITM). We then
    // replay BLIP's two additions to find the ids (next free id in that order: 30522, 30523),
    // but we do NOT register them as added tokens: the transformers tokenizer built from those
    // files splits a typed "[ENC]" into "[", "en", "##c", "]", and text -> ids follows it.
    const implicit = new Map<number, string>();
    let nextFree = distinct.size;
    const blipId = (t: string): number => {
      const id = this.tokenToId(t);
      if (id !== undefined) return id;
      const newId = nextFree++;
      implicit.set(newId, t);
      return newId;
    };
    this.decTokenId = blipId(BLIP_DEC);
    this.encTokenId = blipId(BLIP_ENC);
    this.implicitTokens = implicit;
    this.blipTokensImplicit = implicit.size > 0;
  }

  /**
   * Loads the tokenizer from a checkpoint folder, reading whichever of these exist, with
   * transformers 4.40's precedence for a slow tokenizer:
   * - `vocab.txt` (one token a line, id = line number); or, when absent, the WordPiece
   *   `model.vocab` of `tokenizer.json` (plus its `normalizer` lower-casing/accents settings);
   * - `tokenizer_config.json`: do_lower_case, strip_accents, tokenize_chinese_chars,
   *   do_basic_tokenize, never_split, do_split_on_punc, model_max_length, padding/truncation side,
   *   special token strings, `added_tokens_decoder`;
   * - only when `tokenizer_config.json` has no `added_tokens_decoder` (older saves, and the
   *   real Hub repos): `special_tokens_map.json` (overrides the config's special tokens),
   *   `added_tokens.json` (token -> id) and the `added_tokens` list of `tokenizer.json`.
   */
  static async fromFolder(dir: string, options: TokenizerLoadOptions = {}): Promise<BlipTokenizer> {
    let st;
    try {
      st = await stat(dir);
    } catch (err) {
      throw new CheckpointError(dir, 'tokenizer folder does not exist', { cause: err });
    }
    if (!st.isDirectory()) throw new CheckpointError(dir, 'is not a folder');

    const vocabFile = path.join(dir, 'vocab.txt');
    const configFile = path.join(dir, 'tokenizer_config.json');
    const stmFile = path.join(dir, 'special_tokens_map.json');
    const addedFile = path.join(dir, 'added_tokens.json');
    const tokJsonFile = path.join(dir, 'tokenizer.json');

    const [vocabBytes, configBytes, stmBytes, addedBytes, tokJsonBytes] = await Promise.all(
      [vocabFile, configFile, stmFile, addedFile, tokJsonFile].map(readOptional),
    );
    const config = configBytes ? parseJsonObject(configFile, configBytes) : undefined;
    const tokJson = tokJsonBytes ? parseJsonObject(tokJsonFile, tokJsonBytes) : undefined;

    // ---- vocabulary
    let vocab: Map<string, number>;
    let idToVocabToken: Map<number, string>;
    let fromTokenizerJson = false;
    let modelUnk: string | undefined;
    let maxInputCharsPerWord = 100;
    let continuingSubwordPrefix = '##';
    if (vocabBytes) {
      ({ vocab, idToVocabToken } = parseVocabTxt(vocabFile, vocabBytes));
    } else if (tokJson) {
      fromTokenizerJson = true;
      const model = tokJson.model;
      if (!isObject(model) || !isObject(model.vocab)) {
        throw new CheckpointError(vocabFile, 'missing, and tokenizer.json has no model.vocab to use instead');
      }
      if (model.type !== undefined && model.type !== 'WordPiece') {
        throw new CheckpointError(tokJsonFile, `model.type is ${JSON.stringify(model.type)}; only WordPiece is supported`);
      }
      vocab = new Map();
      idToVocabToken = new Map();
      for (const [tok, id] of Object.entries(model.vocab)) {
        if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
          throw new CheckpointError(tokJsonFile, `model.vocab[${JSON.stringify(tok)}] is not a non-negative integer id`);
        }
        vocab.set(tok, id);
        idToVocabToken.set(id, tok);
      }
      if (vocab.size === 0) throw new CheckpointError(tokJsonFile, 'model.vocab is empty');
      if (typeof model.unk_token === 'string') modelUnk = model.unk_token;
      if (typeof model.max_input_chars_per_word === 'number') maxInputCharsPerWord = model.max_input_chars_per_word;
      if (typeof model.continuing_subword_prefix === 'string') continuingSubwordPrefix = model.continuing_subword_prefix;
    } else {
      throw new CheckpointError(vocabFile, 'missing (the folder has neither vocab.txt nor tokenizer.json)');
    }

    // ---- settings: tokenizer_config.json, else tokenizer.json's normalizer, else BERT defaults
    const cfg: JsonObject = config ?? {};
    const cfgName = configBytes ? configFile : tokJsonFile;
    const normalizer = tokJson ? findBertNormalizer(tokJson.normalizer) : undefined;
    const pick = (key: string, normKey: string, dflt: boolean): boolean => {
      if (cfg[key] !== undefined && cfg[key] !== null) return optBool(cfgName, cfg, key, dflt);
      if (fromTokenizerJson && normalizer && typeof normalizer[normKey] === 'boolean') return normalizer[normKey] as boolean;
      return dflt;
    };
    let stripAccents: boolean | null = null;
    if (cfg.strip_accents !== undefined && cfg.strip_accents !== null) {
      stripAccents = optBool(cfgName, cfg, 'strip_accents', false);
    } else if (fromTokenizerJson && normalizer && typeof normalizer.strip_accents === 'boolean') {
      stripAccents = normalizer.strip_accents;
    }
    let neverSplit: string[] = [];
    if (cfg.never_split !== undefined && cfg.never_split !== null) {
      const ns = cfg.never_split;
      if (!Array.isArray(ns) || !ns.every((x): x is string => typeof x === 'string')) {
        throw new CheckpointError(cfgName, '"never_split" must be null or a list of strings');
      }
      neverSplit = ns;
    }
    let modelMaxLength = DEFAULT_MODEL_MAX_LENGTH;
    const mml = cfg.model_max_length;
    if (mml !== undefined && mml !== null) {
      if (typeof mml !== 'number' || !(mml > 0)) {
        throw new CheckpointError(cfgName, `"model_max_length" must be a positive number, got ${JSON.stringify(mml)}`);
      }
      // transformers writes int(1e30) for "unlimited"; the model has only 512 positions.
      if (mml < 1e12) modelMaxLength = Math.floor(mml);
    }
    const side = (key: string): 'left' | 'right' => {
      const v = cfg[key];
      if (v === undefined || v === null) return 'right';
      if (v !== 'left' && v !== 'right') throw new CheckpointError(cfgName, `"${key}" must be "left" or "right"`);
      return v;
    };
    const settings: TokenizerSettings = {
      doLowerCase: pick('do_lower_case', 'lowercase', true),
      doBasicTokenize: optBool(cfgName, cfg, 'do_basic_tokenize', true),
      tokenizeChineseChars: pick('tokenize_chinese_chars', 'handle_chinese_chars', true),
      stripAccents,
      doSplitOnPunc: optBool(cfgName, cfg, 'do_split_on_punc', true),
      neverSplit,
      splitSpecialTokens: optBool(cfgName, cfg, 'split_special_tokens', false),
      modelMaxLength,
      paddingSide: side('padding_side'),
      truncationSide: side('truncation_side'),
      cleanUpTokenizationSpaces: optBool(cfgName, cfg, 'clean_up_tokenization_spaces', true),
      maxInputCharsPerWord,
      continuingSubwordPrefix,
    };

    // ---- special tokens and added tokens (tokenization_utils_base._from_pretrained)
    const specials = {} as Record<SingleSpecialKey, SpecialValue | null>;
    for (const key of SINGLE_SPECIAL_KEYS) {
      if (key in cfg) specials[key] = specialValueFromJson(cfgName, key, cfg[key], false);
      else specials[key] = key === 'unk_token' && modelUnk !== undefined ? modelUnk : BERT_SPECIAL_DEFAULTS[key];
    }
    let additionalSpecials: SpecialValue[] = readAdditional(cfgName, cfg.additional_special_tokens, false);

    const addedDecoder = new Map<number, AddedTokenSpec>();
    const addedByContent = new Map<string, AddedTokenSpec>();
    const setAdded = (id: number, tok: AddedTokenSpec) => {
      addedDecoder.set(id, tok);
      addedByContent.set(tok.content, tok);
    };

    if (cfg.added_tokens_decoder !== undefined) {
      const atd = cfg.added_tokens_decoder;
      if (!isObject(atd)) throw new CheckpointError(cfgName, '"added_tokens_decoder" must be an object');
      for (const [key, value] of Object.entries(atd)) {
        const id = Number(key);
        if (!/^\d+$/.test(key) || !Number.isSafeInteger(id)) {
          throw new CheckpointError(cfgName, `"added_tokens_decoder" key ${JSON.stringify(key)} is not an id`);
        }
        setAdded(id, addedTokenFromJson(cfgName, `added_tokens_decoder["${key}"]`, value));
      }
    } else {
      // Legacy layout (no added_tokens_decoder): special_tokens_map.json overrides the config.
      if (stmBytes) {
        const stm = parseJsonObject(stmFile, stmBytes);
        for (const [key, value] of Object.entries(stm)) {
          if (key === 'additional_special_tokens') {
            if (!Array.isArray(value)) continue;
            const merged = [...additionalSpecials];
            for (const v of readAdditional(stmFile, value, true)) {
              if (!merged.some((m) => sameSpecial(m, v))) merged.push(v);
            }
            additionalSpecials = merged;
          } else if ((SINGLE_SPECIAL_KEYS as readonly string[]).includes(key)) {
            specials[key as SingleSpecialKey] = specialValueFromJson(stmFile, key, value, true);
          }
        }
      }
      // added_tokens.json: {"token": id}; special when it is one of the special token strings.
      if (addedBytes) {
        const added = parseJsonObject(addedFile, addedBytes);
        const specialStrings = new Set<string>();
        for (const key of SINGLE_SPECIAL_KEYS) {
          const v = specials[key];
          if (v !== null) specialStrings.add(contentOf(v));
        }
        for (const v of additionalSpecials) specialStrings.add(contentOf(v));
        for (const [content, id] of Object.entries(added)) {
          if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
            throw new CheckpointError(addedFile, `id of ${JSON.stringify(content)} is not a non-negative integer`);
          }
          const special = specialStrings.has(content);
          setAdded(id, { content, singleWord: false, lstrip: false, rstrip: false, normalized: !special, special });
        }
      }
      // tokenizer.json's added_tokens (the slow tokenizer reads them in this legacy case).
      if (tokJson) for (const [id, tok] of readTokenizerJsonAdded(tokJsonFile, tokJson)) setAdded(id, tok);
    }
    if (fromTokenizerJson && cfg.added_tokens_decoder !== undefined && tokJson) {
      // No vocab.txt: the fast tokenizer's own added tokens also apply.
      for (const [id, tok] of readTokenizerJsonAdded(tokJsonFile, tokJson)) {
        if (!addedDecoder.has(id)) setAdded(id, tok);
      }
    }

    // "Passing AddedTokens and not strings": a special token string that names an added token
    // takes that token's flags.
    for (const key of SINGLE_SPECIAL_KEYS) {
      const v = specials[key];
      if (typeof v === 'string' && addedByContent.size > 0) specials[key] = addedByContent.get(v) ?? v;
    }

    return new BlipTokenizer({
      vocab,
      idToVocabToken,
      addedDecoder,
      specials,
      additionalSpecials,
      settings,
      fastAddedTokenSemantics: fromTokenizerJson,
      configFile: cfgName,
      onWarning: options.onWarning ?? defaultWarning,
    });
  }

  // -------------------------------------------------------------------------------------------
  // Vocabulary queries
  // -------------------------------------------------------------------------------------------

  /** Size of the base vocabulary (vocab.txt), without added tokens. */
  get vocabSize(): number {
    return this.vocab.size;
  }

  /** transformers' `len(tokenizer)`: distinct strings in the vocabulary plus added tokens. */
  get size(): number {
    return new Set([...this.vocab.keys(), ...this.addedEncoder.keys()]).size;
  }

  /** The special token strings, in transformers' `all_special_tokens` order. */
  get specialTokens(): readonly string[] {
    return this.allSpecialTokens;
  }

  /** The added tokens (from the files and the special tokens), sorted by id. */
  get addedTokens(): AddedTokenInfo[] {
    return [...this.addedDecoder.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([id, t]) => ({ id, ...t }));
  }

  /** The id of a token string (added tokens first, then the vocabulary); `undefined` if unknown. */
  tokenToId(token: string): number | undefined {
    return this.addedEncoder.get(token) ?? this.vocab.get(token);
  }

  /** The token string of an id; `undefined` when no token has it. */
  idToToken(id: number): string | undefined {
    return this.addedDecoder.get(id)?.content ?? this.idToVocabToken.get(id) ?? this.implicitTokens.get(id);
  }

  // -------------------------------------------------------------------------------------------
  // Tokenisation
  // -------------------------------------------------------------------------------------------

  /** Text to word-piece / added-token strings, without `[CLS]`/`[SEP]` (transformers' `tokenize`). */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new UsageError(`text must be a string, got ${typeof text}`);
    if (this.lowerCasePattern) {
      text = text.replace(this.lowerCasePattern, (m: string, special: string | undefined) =>
        special !== undefined ? special : m.toLowerCase(),
      );
    }
    const pieces = this.settings.splitSpecialTokens ? [text] : this.trie.split(text);
    const isAdded = (p: string) => !this.settings.splitSpecialTokens && this.addedEncoder.has(p);

    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (!isAdded(piece)) continue;
      const tok = this.addedDecoder.get(this.addedEncoder.get(piece) as number);
      if (!tok) continue;
      const left = i > 0 ? pieces[i - 1] : undefined;
      const right = i < pieces.length - 1 ? pieces[i + 1] : undefined;
      if (tok.rstrip && right) pieces[i + 1] = pyLStrip(right);
      if (tok.lstrip && left) pieces[i - 1] = pyRStrip(left);
      if (tok.singleWord && left && !left.endsWith(' ')) {
        pieces[i - 1] += piece;
        pieces[i] = '';
      } else if (tok.singleWord && right && !right.startsWith(' ')) {
        pieces[i] += right;
        pieces[i + 1] = '';
      }
    }

    const out: string[] = [];
    for (const piece of pieces) {
      if (!piece) continue;
      if (isAdded(piece)) out.push(piece);
      else for (const t of this.tokenizeNonAdded(piece)) out.push(t);
    }
    return out;
  }

  /** BertTokenizer._tokenize: basic tokenisation then WordPiece. */
  private tokenizeNonAdded(text: string): string[] {
    const out: string[] = [];
    if (!this.settings.doBasicTokenize) {
      for (const w of pySplit(text)) this.wordPiece(w, out);
      return out;
    }
    for (const token of this.basicTokenize(text)) {
      if (this.basicNeverSplit.has(token)) out.push(token);
      else this.wordPiece(token, out);
    }
    return out;
  }

  /** BasicTokenizer.tokenize. */
  private basicTokenize(text: string): string[] {
    const s = this.settings;
    text = text.replace(DELETED_CHARS, '').replace(WHITESPACE_CHARS, ' ');
    if (s.tokenizeChineseChars) text = text.replace(CJK_CHARS, ' $& ');
    text = text.normalize('NFC');
    const out: string[] = [];
    for (let token of pySplit(text)) {
      if (this.neverSplit.has(token)) {
        out.push(token);
        continue;
      }
      if (s.doLowerCase) {
        token = token.toLowerCase();
        if (s.stripAccents !== false) token = stripAccents(token);
      } else if (s.stripAccents === true) {
        token = stripAccents(token);
      }
      if (!s.doSplitOnPunc) {
        if (token) out.push(token);
        continue;
      }
      let current = '';
      for (const ch of token) {
        if (isPunctuation(ch)) {
          if (current) out.push(current);
          current = '';
          out.push(ch);
        } else {
          current += ch;
        }
      }
      if (current) out.push(current);
    }
    // `whitespace_tokenize(" ".join(split_tokens))`: a piece can contain no whitespace any more,
    // so this only drops empties (done above).
    return out;
  }

  /** WordpieceTokenizer.tokenize for one whitespace-free word. */
  private wordPiece(word: string, out: string[]): void {
    const unk = this.idToToken(this.unkTokenId) as string;
    const chars = Array.from(word);
    if (chars.length > this.settings.maxInputCharsPerWord) {
      out.push(unk);
      return;
    }
    const prefix = this.settings.continuingSubwordPrefix;
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | undefined;
      while (start < end) {
        let sub = chars.slice(start, end).join('');
        if (start > 0) sub = prefix + sub;
        if (this.vocab.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === undefined) {
        out.push(unk);
        return;
      }
      pieces.push(found);
      start = end;
    }
    for (const p of pieces) out.push(p);
  }

  private convertTokenToId(token: string): number {
    return this.addedEncoder.get(token) ?? this.vocab.get(token) ?? this.unkTokenId;
  }

  // -------------------------------------------------------------------------------------------
  // Encoding
  // -------------------------------------------------------------------------------------------

  /** One text to ids: tokenise, truncate, add `[CLS]`/`[SEP]` (transformers' `__call__` on one string). */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const limit = this.resolveMaxLength(options.maxLength);
    const truncation = options.truncation ?? 'auto';
    checkTruncation(truncation);
    const warn = options.onWarning ?? this.onWarning;
    const enc = this.encodeOne(text, options.addSpecialTokens ?? true, truncation, limit);
    if (enc.truncatedTokens > 0 && truncation === 'auto') {
      warn(
        `text of ${enc.inputIds.length + enc.truncatedTokens} tokens is longer than the maximum of ${limit}; ` +
          `truncated to ${enc.inputIds.length} (pass truncation: true to silence this, or false to keep every token)`,
      );
    }
    return enc;
  }

  /**
   * Several texts to one padded batch (transformers' `__call__` on a list). Default padding is
   * `'longest'`; with `padding: false` every text must give the same length.
   */
  call(texts: readonly string[] | string, options: BatchOptions = {}): BatchEncoding {
    const list = typeof texts === 'string' ? [texts] : texts;
    if (!Array.isArray(list)) throw new UsageError('texts must be a string or an array of strings');
    const truncation = options.truncation ?? 'auto';
    checkTruncation(truncation);
    const padding = options.padding ?? 'longest';
    if (padding !== false && padding !== true && padding !== 'longest' && padding !== 'max_length') {
      throw new UsageError(`padding must be false, true, 'longest' or 'max_length', got ${JSON.stringify(padding)}`);
    }
    const limit = this.resolveMaxLength(options.maxLength);
    const warn = options.onWarning ?? this.onWarning;
    const addSpecial = options.addSpecialTokens ?? true;

    const encs = list.map((t, i) => {
      if (typeof t !== 'string') throw new UsageError(`texts[${i}] must be a string, got ${typeof t}`);
      return this.encodeOne(t, addSpecial, truncation, limit);
    });
    if (truncation === 'auto') {
      const cut = encs.map((e, i) => [i, e] as const).filter(([, e]) => e.truncatedTokens > 0);
      if (cut.length > 0) {
        const which = cut.map(([i, e]) => `#${i} (${e.inputIds.length + e.truncatedTokens} tokens)`).join(', ');
        warn(
          `${cut.length} of ${encs.length} texts longer than the maximum of ${limit} tokens were truncated: ${which} ` +
            `(pass truncation: true to silence this, or false to keep every token)`,
        );
      }
    }

    const longest = encs.reduce((m, e) => Math.max(m, e.inputIds.length), 0);
    let width: number;
    if (padding === false) {
      if (encs.some((e) => e.inputIds.length !== longest)) {
        throw new UsageError('texts give different numbers of tokens; use padding to make one batch');
      }
      width = longest;
    } else if (padding === 'max_length') {
      width = limit;
      const over = encs.findIndex((e) => e.inputIds.length > limit);
      if (over >= 0) {
        throw new UsageError(
          `texts[${over}] has ${encs[over].inputIds.length} tokens, more than max_length ${limit}; enable truncation`,
        );
      }
    } else {
      width = longest;
    }

    const batch = encs.length;
    const inputIds = new BigInt64Array(batch * width);
    const attentionMask = new BigInt64Array(batch * width);
    const inputIdsList: number[][] = [];
    const attentionMaskList: number[][] = [];
    const padId = this.padTokenId;
    const left = this.settings.paddingSide === 'left';
    encs.forEach((e, r) => {
      const n = e.inputIds.length;
      const padCount = width - n;
      const pads = new Array<number>(padCount).fill(padId);
      const zeros = new Array<number>(padCount).fill(0);
      const ids = left ? [...pads, ...e.inputIds] : [...e.inputIds, ...pads];
      const mask = left ? [...zeros, ...e.attentionMask] : [...e.attentionMask, ...zeros];
      for (let c = 0; c < width; c++) {
        inputIds[r * width + c] = BigInt(ids[c]);
        attentionMask[r * width + c] = BigInt(mask[c]);
      }
      inputIdsList.push(ids);
      attentionMaskList.push(mask);
    });
    return {
      inputIds,
      attentionMask,
      dims: [batch, width],
      inputIdsList,
      attentionMaskList,
      tokens: encs.map((e) => e.tokens),
      truncatedTokens: encs.map((e) => e.truncatedTokens),
    };
  }

  private resolveMaxLength(maxLength: number | undefined): number {
    if (maxLength === undefined) return this.modelMaxLength;
    if (typeof maxLength !== 'number' || !Number.isInteger(maxLength) || maxLength < 1) {
      throw new UsageError(`maxLength must be a positive integer, got ${String(maxLength)}`);
    }
    return maxLength;
  }

  /** prepare_for_model for one sequence, without padding. */
  private encodeOne(text: string, addSpecial: boolean, truncation: TruncationOption, limit: number): Encoding {
    const tokens = this.tokenize(text);
    let ids = tokens.map((t) => this.convertTokenToId(t));
    let toks = tokens;
    const numSpecial = addSpecial ? 2 : 0;
    let removed = 0;
    if (truncation !== false && ids.length + numSpecial > limit) {
      removed = ids.length + numSpecial - limit;
      if (removed >= ids.length) {
        // transformers logs an error and leaves the sequence untruncated here; refuse instead.
        throw new UsageError(
          `maxLength ${limit} leaves no room for text after the ${numSpecial} special tokens; use at least ${numSpecial + 1}`,
        );
      }
      if (this.settings.truncationSide === 'left') {
        ids = ids.slice(removed);
        toks = toks.slice(removed);
      } else {
        ids = ids.slice(0, ids.length - removed);
        toks = toks.slice(0, toks.length - removed);
      }
    }
    if (addSpecial) {
      ids = [this.clsTokenId, ...ids, this.sepTokenId];
      toks = [this.idToToken(this.clsTokenId) as string, ...toks, this.idToToken(this.sepTokenId) as string];
    }
    return { inputIds: ids, tokens: toks, attentionMask: ids.map(() => 1), truncatedTokens: removed };
  }

  // -------------------------------------------------------------------------------------------
  // Decoding
  // -------------------------------------------------------------------------------------------

  /**
   * Ids back to text, as the slow tokenizer's `decode` does for ordinary input: tokens joined by
   * spaces, `" ##"` removed, then transformers' `clean_up_tokenization` spacing fixes.
   */
  decode(ids: ArrayLike<number | bigint>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? false;
    const cleanUp = options.cleanUpTokenizationSpaces ?? this.settings.cleanUpTokenizationSpaces;
    const specialIds = new Set(this.allSpecialIds);
    specialIds.add(this.decTokenId);
    specialIds.add(this.encTokenId);
    const unk = this.idToToken(this.unkTokenId) as string;
    const legacyAdded = new Set(
      [...this.addedEncoder.keys()].filter((t) => !this.allSpecialTokens.includes(t)),
    );
    const parts: string[] = [];
    let current: string[] = [];
    const flush = () => {
      if (current.length > 0) {
        const s = current.join(' ').split(' ' + this.settings.continuingSubwordPrefix).join('').trim();
        if (s.length > 0) parts.push(s);
        current = [];
      }
    };
    for (let i = 0; i < ids.length; i++) {
      const id = Number(ids[i]);
      if (skip && specialIds.has(id)) continue;
      const tok = this.idToToken(id) ?? unk;
      if (legacyAdded.has(tok)) {
        flush();
        parts.push(tok);
      } else {
        current.push(tok);
      }
    }
    flush();
    let text = parts.join(' ');
    if (cleanUp) {
      text = text
        .split(' .').join('.')
        .split(' ?').join('?')
        .split(' !').join('!')
        .split(' ,').join(',')
        .split(" ' ").join("'")
        .split(" n't").join("n't")
        .split(" 'm").join("'m")
        .split(" 's").join("'s")
        .split(" 've").join("'ve")
        .split(" 're").join("'re");
    }
    return text;
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers used by fromFolder
// ---------------------------------------------------------------------------------------------

function checkTruncation(t: unknown): void {
  if (t !== true && t !== false && t !== 'auto') {
    throw new UsageError(`truncation must be true, false or 'auto', got ${JSON.stringify(t)}`);
  }
}

function stripAccents(token: string): string {
  return token.normalize('NFD').replace(NONSPACING_MARKS, '');
}

/** `load_vocab`: one token a line (universal newlines), id = line number; a repeated line keeps its last id. */
function parseVocabTxt(file: string, bytes: Buffer): { vocab: Map<string, number>; idToVocabToken: Map<number, string> } {
  const text = decodeUtf8(file, bytes);
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) throw new CheckpointError(file, 'is empty');
  const vocab = new Map<string, number>();
  const idToVocabToken = new Map<number, string>();
  lines.forEach((tok, id) => {
    vocab.set(tok, id);
    idToVocabToken.set(id, tok);
  });
  return { vocab, idToVocabToken };
}

function readAdditional(file: string, value: Json | undefined, forceSpecial: boolean): SpecialValue[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new CheckpointError(file, '"additional_special_tokens" must be a list');
  return value.map((v, i) => {
    if (typeof v === 'string') return v;
    return addedTokenFromJson(file, `additional_special_tokens[${i}]`, v, forceSpecial);
  });
}

function sameSpecial(a: SpecialValue, b: SpecialValue): boolean {
  return contentOf(a) === contentOf(b);
}

function readTokenizerJsonAdded(file: string, tokJson: JsonObject): Array<[number, AddedTokenSpec]> {
  const list = tokJson.added_tokens;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new CheckpointError(file, '"added_tokens" must be a list');
  return list.map((entry, i) => {
    if (!isObject(entry) || typeof entry.id !== 'number' || !Number.isSafeInteger(entry.id) || entry.id < 0) {
      throw new CheckpointError(file, `added_tokens[${i}] has no valid "id"`);
    }
    return [entry.id, addedTokenFromJson(file, `added_tokens[${i}]`, entry)];
  });
}

/** The BertNormalizer settings of a tokenizer.json normalizer (directly or inside a Sequence). */
function findBertNormalizer(n: Json | undefined): JsonObject | undefined {
  if (!isObject(n)) return undefined;
  if (n.type === 'BertNormalizer') return n;
  if (n.type === 'Sequence' && Array.isArray(n.normalizers)) {
    for (const m of n.normalizers) {
      const found = findBertNormalizer(m);
      if (found) return found;
    }
  }
  return undefined;
}
