/**
 * The BLIP text tokenizer: a port of transformers 4.40.2's slow (pure-Python) `BertTokenizer`
 * (uncased WordPiece) configured the way BLIP configures it, loaded from a checkpoint folder.
 * This class wires the stages together; each lives in its own module:
 *
 *  1. lower-casing pre-pass (only when `do_lower_case` and `do_basic_tokenize`): every code point
 *     is lower-cased on its own, except where a special-token string (or a non-special,
 *     "normalized" added token) occurs verbatim, case-sensitively (added-tokens.ts);
 *  2. added-token split: every added/special token string typed in the text (`[CLS]`, `[PAD]`,
 *     `[DEC]`, ...) is cut out (leftmost, longest match) and becomes its id directly, honouring
 *     the token's lstrip / rstrip / single_word flags (added-tokens.ts);
 *  3. on the remaining pieces, `BasicTokenizer`: cleaning, CJK, NFC, whitespace split,
 *     lower-casing, accents, punctuation (basic-tokenizer.ts);
 *  4. `WordpieceTokenizer`: greedy longest match with the `##` prefix (wordpiece.ts);
 *  5. tokens to ids (added tokens first, then the vocabulary, else the `[UNK]` id), truncation,
 *     `[CLS] ... [SEP]`, padding (encoding.ts).
 *
 * Configuration is parsed from the checkpoint's files with transformers' precedence (tokenizer-files.ts);
 * this class is platform-neutral, and reading a folder is Node's part (../tokenizer.ts).
 */
import { CheckpointError, UsageError } from '../../errors.js';
import { AddedVocabulary, contentOf, type SingleSpecialKey } from './added-tokens.js';
import { BasicTokenizer, pySplit } from './basic-tokenizer.js';
import {
  batchTruncationWarning,
  checkPadding,
  checkTruncation,
  cleanUpTokenization,
  padBatch,
  resolveMaxLength,
  truncate,
  truncationWarning,
} from './encoding.js';
import { type TokenizerFileContents, tokenizerFilesFromContents, type TokenizerFiles } from './tokenizer-files.js';
import type {
  AddedTokenInfo,
  BatchEncoding,
  BatchOptions,
  DecodeOptions,
  EncodeOptions,
  Encoding,
  TokenizerLoadOptions,
  TokenizerSettings,
  TruncationOption,
} from './types.js';
import { WordpieceTokenizer } from './wordpiece.js';

/** BLIP's extra tokens and the order BLIP's `init_tokenizer` adds them in. */
const BLIP_DEC = '[DEC]';
const BLIP_ENC = '[ENC]';

function defaultWarning(message: string): void {
  // Node's warning channel where there is one (the CLI and --no-warnings honour it).
  if (typeof process !== 'undefined' && typeof process.emitWarning === 'function') process.emitWarning(message, { type: 'BlipTokenizerWarning' });
  else console.warn(message);
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
  private readonly added: AddedVocabulary;
  private readonly lowerCasePattern: RegExp | null;
  private readonly allSpecialIds: Set<number>;
  private readonly basic: BasicTokenizer;
  private readonly wordpiece: WordpieceTokenizer;
  private readonly implicitTokens: Map<number, string>;
  private readonly onWarning: (message: string) => void;

  /** From parsed files; platforms add their own loaders (Node: BlipTokenizer.fromFolder in ../tokenizer.ts). */
  protected constructor(files: TokenizerFiles, options: TokenizerLoadOptions = {}) {
    const onWarning = options.onWarning ?? defaultWarning;
    this.vocab = files.vocab;
    this.idToVocabToken = files.idToVocabToken;
    this.settings = files.settings;
    this.modelMaxLength = files.settings.modelMaxLength;
    this.onWarning = onWarning;
    this.added = new AddedVocabulary(files.vocab, files.addedDecoder, files.specials, files.additionalSpecials);

    // Every special token has an id by now (AddedVocabulary added the missing ones).
    const idOf = (t: string): number => this.tokenToId(t) ?? this.unkTokenId;
    const unk = files.specials.unk_token;
    if (unk === null) throw new CheckpointError(files.configFile, 'unk_token must not be null');
    const unkId = this.tokenToId(contentOf(unk));
    if (unkId === undefined) throw new CheckpointError(files.configFile, `unk_token ${JSON.stringify(contentOf(unk))} has no id`);
    this.unkTokenId = unkId;
    const required = (key: SingleSpecialKey): number => {
      const v = files.specials[key];
      if (v === null) throw new CheckpointError(files.configFile, `${key} must not be null for a BERT tokenizer`);
      return idOf(contentOf(v));
    };
    this.clsTokenId = required('cls_token');
    this.sepTokenId = required('sep_token');
    this.padTokenId = required('pad_token');
    const optional = (key: SingleSpecialKey): number | undefined => {
      const v = files.specials[key];
      return v === null ? undefined : idOf(contentOf(v));
    };
    this.maskTokenId = optional('mask_token');
    this.bosTokenId = optional('bos_token');
    this.allSpecialIds = new Set(this.added.specialTokens.map(idOf));

    // Lower-casing pre-pass (`hasattr(self, "do_lower_case") and self.do_lower_case`; BertTokenizer's
    // property is the basic tokenizer's flag, which does not exist when do_basic_tokenize is off).
    const s = files.settings;
    this.lowerCasePattern = s.doLowerCase && s.doBasicTokenize ? this.added.lowerCasePattern(files.fastAddedTokenSemantics) : null;
    this.basic = new BasicTokenizer(s, this.added.specialTokens);

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
    let nextFree = this.added.distinctSize;
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

    this.wordpiece = new WordpieceTokenizer(this.vocab, this.idToToken(this.unkTokenId) as string, s.maxInputCharsPerWord, s.continuingSubwordPrefix);
  }

  /**
   * From the files' bytes, for platforms without a file system (the browser build); `base`
   * (a folder or a URL ending in "/") names them in error messages.
   */
  static fromFileContents(contents: TokenizerFileContents, base: string, options: TokenizerLoadOptions = {}): BlipTokenizer {
    return new BlipTokenizer(tokenizerFilesFromContents(contents, base), options);
  }

  // Vocabulary queries

  /** Size of the base vocabulary (vocab.txt), without added tokens. */
  get vocabSize(): number {
    return this.vocab.size;
  }

  /** transformers' `len(tokenizer)`: distinct strings in the vocabulary plus added tokens. */
  get size(): number {
    return new Set([...this.vocab.keys(), ...this.added.encoder.keys()]).size;
  }

  /** The special token strings, in transformers' `all_special_tokens` order. */
  get specialTokens(): readonly string[] {
    return this.added.specialTokens;
  }

  /** The added tokens (from the files and the special tokens), sorted by id. */
  get addedTokens(): AddedTokenInfo[] {
    return [...this.added.decoder.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([id, t]) => ({ id, ...t }));
  }

  /** The id of a token string (added tokens first, then the vocabulary); `undefined` if unknown. */
  tokenToId(token: string): number | undefined {
    return this.added.encoder.get(token) ?? this.vocab.get(token);
  }

  /** The token string of an id; `undefined` when no token has it. */
  idToToken(id: number): string | undefined {
    return this.added.decoder.get(id)?.content ?? this.idToVocabToken.get(id) ?? this.implicitTokens.get(id);
  }

  // Tokenisation

  /** Text to word-piece / added-token strings, without `[CLS]`/`[SEP]` (transformers' `tokenize`). */
  tokenize(text: string): string[] {
    if (typeof text !== 'string') throw new UsageError(`text must be a string, got ${typeof text}`);
    if (this.lowerCasePattern) {
      text = text.replace(this.lowerCasePattern, (m: string, special: string | undefined) =>
        special !== undefined ? special : m.toLowerCase(),
      );
    }
    if (this.settings.splitSpecialTokens) return this.tokenizeNonAdded(text);
    const out: string[] = [];
    for (const piece of this.added.split(text)) {
      if (!piece) continue;
      if (this.added.encoder.has(piece)) out.push(piece);
      else for (const t of this.tokenizeNonAdded(piece)) out.push(t);
    }
    return out;
  }

  /** BertTokenizer._tokenize: basic tokenisation then WordPiece. */
  private tokenizeNonAdded(text: string): string[] {
    const out: string[] = [];
    if (!this.settings.doBasicTokenize) {
      for (const w of pySplit(text)) this.wordpiece.tokenize(w, out);
      return out;
    }
    for (const token of this.basic.tokenize(text)) {
      if (this.basic.neverSplit.has(token)) out.push(token);
      else this.wordpiece.tokenize(token, out);
    }
    return out;
  }

  private convertTokenToId(token: string): number {
    return this.added.encoder.get(token) ?? this.vocab.get(token) ?? this.unkTokenId;
  }

  // Encoding

  /** One text to ids: tokenise, truncate, add `[CLS]`/`[SEP]` (transformers' `__call__` on one string). */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const limit = resolveMaxLength(options.maxLength, this.modelMaxLength);
    const truncation = options.truncation ?? 'auto';
    checkTruncation(truncation);
    const warn = options.onWarning ?? this.onWarning;
    const enc = this.encodeOne(text, options.addSpecialTokens ?? true, truncation, limit);
    const warning = truncation === 'auto' ? truncationWarning(enc, limit) : undefined;
    if (warning !== undefined) warn(warning);
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
    checkPadding(padding);
    const limit = resolveMaxLength(options.maxLength, this.modelMaxLength);
    const warn = options.onWarning ?? this.onWarning;
    const addSpecial = options.addSpecialTokens ?? true;

    const encs = list.map((t, i) => {
      if (typeof t !== 'string') throw new UsageError(`texts[${i}] must be a string, got ${typeof t}`);
      return this.encodeOne(t, addSpecial, truncation, limit);
    });
    const warning = truncation === 'auto' ? batchTruncationWarning(encs, limit) : undefined;
    if (warning !== undefined) warn(warning);
    return padBatch(encs, padding, limit, this.padTokenId, this.settings.paddingSide);
  }

  /** prepare_for_model for one sequence, without padding. */
  private encodeOne(text: string, addSpecial: boolean, truncation: TruncationOption, limit: number): Encoding {
    const tokens = this.tokenize(text);
    let ids = tokens.map((t) => this.convertTokenToId(t));
    let toks = tokens;
    const numSpecial = addSpecial ? 2 : 0;
    let removed = 0;
    if (truncation !== false) ({ ids, tokens: toks, removed } = truncate(ids, toks, numSpecial, limit, this.settings.truncationSide));
    if (addSpecial) {
      ids = [this.clsTokenId, ...ids, this.sepTokenId];
      toks = [this.idToToken(this.clsTokenId) as string, ...toks, this.idToToken(this.sepTokenId) as string];
    }
    return { inputIds: ids, tokens: toks, attentionMask: ids.map(() => 1), truncatedTokens: removed };
  }

  // Decoding

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
    const specialTokens = this.added.specialTokens;
    const legacyAdded = new Set([...this.added.encoder.keys()].filter((t) => !specialTokens.includes(t)));
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
    const text = parts.join(' ');
    return cleanUp ? cleanUpTokenization(text) : text;
  }
}
