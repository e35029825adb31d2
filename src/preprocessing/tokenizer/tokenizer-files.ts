/**
 * Reading a checkpoint folder's tokenizer files into the tokenizer's vocabulary, settings and
 * added/special tokens, with transformers 4.40's precedence for a slow tokenizer
 * (`PreTrainedTokenizerBase._from_pretrained` and BertTokenizer's `load_vocab`):
 * - `vocab.txt` (one token a line, id = line number); or, when absent, the WordPiece
 *   `model.vocab` of `tokenizer.json` (plus its `normalizer` lower-casing/accents settings);
 * - `tokenizer_config.json`: do_lower_case, strip_accents, tokenize_chinese_chars,
 *   do_basic_tokenize, never_split, do_split_on_punc, model_max_length, padding/truncation side,
 *   special token strings, `added_tokens_decoder`;
 * - only when `tokenizer_config.json` has no `added_tokens_decoder` (older saves, and the
 *   real Hub repos): `special_tokens_map.json` (overrides the config's special tokens),
 *   `added_tokens.json` (token -> id) and the `added_tokens` list of `tokenizer.json`.
 *
 * This module parses the files' bytes and is platform-neutral; reading them from a folder is
 * ./read-tokenizer-files.ts (Node).
 */
import { CheckpointError } from '../../errors.js';
import { contentOf, SINGLE_SPECIAL_KEYS, type SingleSpecialKey, type SpecialTokens, type SpecialValue } from './added-tokens.js';
import {
  addedTokenFromJson,
  decodeUtf8,
  findBertNormalizer,
  isObject,
  type JsonObject,
  optBool,
  parseJsonObject,
  readAdditional,
  readTokenizerJsonAdded,
  specialValueFromJson,
} from './json-values.js';
import type { AddedTokenSpec, TokenizerSettings } from './types.js';

/** Everything the files say, before the special tokens are registered. */
export interface TokenizerFiles {
  vocab: Map<string, number>;
  idToVocabToken: Map<number, string>;
  /** The added tokens the files list, by id. */
  addedDecoder: Map<number, AddedTokenSpec>;
  specials: SpecialTokens;
  additionalSpecials: SpecialValue[];
  settings: TokenizerSettings;
  /**
   * Loaded from tokenizer.json alone: follow the fast tokenizer, where an added token with
   * `normalized: false` is matched in the raw text (so it is also kept out of lower-casing).
   */
  fastAddedTokenSemantics: boolean;
  /** The file named in errors about the special tokens. */
  configFile: string;
}

/**
 * transformers uses this as "no limit" (1e30) when a tokenizer_config has no model_max_length.
 * The BLIP text model has 512 positions, so that is our fallback.
 */
const DEFAULT_MODEL_MAX_LENGTH = 512;

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

/** The file's bytes, or undefined when there is no such file; anything else unreadable is an error. */
/** `load_vocab`: one token a line (universal newlines), id = line number; a repeated line keeps its last id. */
function parseVocabTxt(file: string, bytes: Uint8Array): { vocab: Map<string, number>; idToVocabToken: Map<number, string> } {
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

interface Vocabulary {
  vocab: Map<string, number>;
  idToVocabToken: Map<number, string>;
  fromTokenizerJson: boolean;
  modelUnk?: string;
  maxInputCharsPerWord: number;
  continuingSubwordPrefix: string;
}

/** vocab.txt, else the WordPiece model of tokenizer.json. */
function readVocabulary(vocabFile: string, vocabBytes: Uint8Array | undefined, tokJsonFile: string, tokJson: JsonObject | undefined): Vocabulary {
  if (vocabBytes) {
    return { ...parseVocabTxt(vocabFile, vocabBytes), fromTokenizerJson: false, maxInputCharsPerWord: 100, continuingSubwordPrefix: '##' };
  }
  if (!tokJson) throw new CheckpointError(vocabFile, 'missing (the folder has neither vocab.txt nor tokenizer.json)');
  const model = tokJson.model;
  if (!isObject(model) || !isObject(model.vocab)) {
    throw new CheckpointError(vocabFile, 'missing, and tokenizer.json has no model.vocab to use instead');
  }
  if (model.type !== undefined && model.type !== 'WordPiece') {
    throw new CheckpointError(tokJsonFile, `model.type is ${JSON.stringify(model.type)}; only WordPiece is supported`);
  }
  const vocab = new Map<string, number>();
  const idToVocabToken = new Map<number, string>();
  for (const [tok, id] of Object.entries(model.vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
      throw new CheckpointError(tokJsonFile, `model.vocab[${JSON.stringify(tok)}] is not a non-negative integer id`);
    }
    vocab.set(tok, id);
    idToVocabToken.set(id, tok);
  }
  if (vocab.size === 0) throw new CheckpointError(tokJsonFile, 'model.vocab is empty');
  return {
    vocab,
    idToVocabToken,
    fromTokenizerJson: true,
    modelUnk: typeof model.unk_token === 'string' ? model.unk_token : undefined,
    maxInputCharsPerWord: typeof model.max_input_chars_per_word === 'number' ? model.max_input_chars_per_word : 100,
    continuingSubwordPrefix: typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '##',
  };
}

/** tokenizer_config.json, else tokenizer.json's normalizer (when it gave the vocabulary), else BERT defaults. */
function readSettings(cfgName: string, cfg: JsonObject, tokJson: JsonObject | undefined, v: Vocabulary): TokenizerSettings {
  const normalizer = tokJson ? findBertNormalizer(tokJson.normalizer) : undefined;
  const pick = (key: string, normKey: string, dflt: boolean): boolean => {
    if (cfg[key] !== undefined && cfg[key] !== null) return optBool(cfgName, cfg, key, dflt);
    if (v.fromTokenizerJson && normalizer && typeof normalizer[normKey] === 'boolean') return normalizer[normKey] as boolean;
    return dflt;
  };
  let stripAccents: boolean | null = null;
  if (cfg.strip_accents !== undefined && cfg.strip_accents !== null) {
    stripAccents = optBool(cfgName, cfg, 'strip_accents', false);
  } else if (v.fromTokenizerJson && normalizer && typeof normalizer.strip_accents === 'boolean') {
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
    const val = cfg[key];
    if (val === undefined || val === null) return 'right';
    if (val !== 'left' && val !== 'right') throw new CheckpointError(cfgName, `"${key}" must be "left" or "right"`);
    return val;
  };
  return {
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
    maxInputCharsPerWord: v.maxInputCharsPerWord,
    continuingSubwordPrefix: v.continuingSubwordPrefix,
  };
}

interface LegacyFiles {
  stmFile: string;
  stmBytes: Uint8Array | undefined;
  addedFile: string;
  addedBytes: Uint8Array | undefined;
  tokJsonFile: string;
  tokJson: JsonObject | undefined;
}

/** Special tokens and added tokens (tokenization_utils_base._from_pretrained). */
function readSpecialTokens(
  cfgName: string,
  cfg: JsonObject,
  v: Vocabulary,
  legacy: LegacyFiles,
): Pick<TokenizerFiles, 'addedDecoder' | 'specials' | 'additionalSpecials'> {
  const specials = {} as SpecialTokens;
  for (const key of SINGLE_SPECIAL_KEYS) {
    if (key in cfg) specials[key] = specialValueFromJson(cfgName, key, cfg[key], false);
    else specials[key] = key === 'unk_token' && v.modelUnk !== undefined ? v.modelUnk : BERT_SPECIAL_DEFAULTS[key];
  }
  let additionalSpecials: SpecialValue[] = readAdditional(cfgName, cfg.additional_special_tokens, false);

  const addedDecoder = new Map<number, AddedTokenSpec>();
  const addedByContent = new Map<string, AddedTokenSpec>();
  const setAdded = (id: number, tok: AddedTokenSpec) => {
    addedDecoder.set(id, tok);
    addedByContent.set(tok.content, tok);
  };
  const { stmFile, stmBytes, addedFile, addedBytes, tokJsonFile, tokJson } = legacy;

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
          for (const sv of readAdditional(stmFile, value, true)) {
            if (!merged.some((m) => contentOf(m) === contentOf(sv))) merged.push(sv);
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
        const sv = specials[key];
        if (sv !== null) specialStrings.add(contentOf(sv));
      }
      for (const sv of additionalSpecials) specialStrings.add(contentOf(sv));
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
  if (v.fromTokenizerJson && cfg.added_tokens_decoder !== undefined && tokJson) {
    // No vocab.txt: the fast tokenizer's own added tokens also apply.
    for (const [id, tok] of readTokenizerJsonAdded(tokJsonFile, tokJson)) {
      if (!addedDecoder.has(id)) setAdded(id, tok);
    }
  }

  // "Passing AddedTokens and not strings": a special token string that names an added token
  // takes that token's flags.
  for (const key of SINGLE_SPECIAL_KEYS) {
    const sv = specials[key];
    if (typeof sv === 'string' && addedByContent.size > 0) specials[key] = addedByContent.get(sv) ?? sv;
  }
  return { addedDecoder, specials, additionalSpecials };
}

/** The bytes of whichever tokenizer files a checkpoint has; absent files are undefined. */
export interface TokenizerFileContents {
  /** vocab.txt */
  vocab?: Uint8Array;
  /** tokenizer_config.json */
  config?: Uint8Array;
  /** special_tokens_map.json */
  specialTokensMap?: Uint8Array;
  /** added_tokens.json */
  addedTokens?: Uint8Array;
  /** tokenizer.json */
  tokenizerJson?: Uint8Array;
}

/**
 * The tokenizer files' contents, parsed (readTokenizerFiles reads them from a folder on Node);
 * `base` names the folder or URL they came from in error messages.
 */
export function tokenizerFilesFromContents(contents: TokenizerFileContents, base: string): TokenizerFiles {
  const name = (file: string): string => (/[/\\]$/.test(base) ? `${base}${file}` : `${base}/${file}`);
  const vocabFile = name('vocab.txt');
  const configFile = name('tokenizer_config.json');
  const stmFile = name('special_tokens_map.json');
  const addedFile = name('added_tokens.json');
  const tokJsonFile = name('tokenizer.json');
  const {
    vocab: vocabBytes, config: configBytes, specialTokensMap: stmBytes, addedTokens: addedBytes, tokenizerJson: tokJsonBytes,
  } = contents;
  const config = configBytes ? parseJsonObject(configFile, configBytes) : undefined;
  const tokJson = tokJsonBytes ? parseJsonObject(tokJsonFile, tokJsonBytes) : undefined;

  const vocabulary = readVocabulary(vocabFile, vocabBytes, tokJsonFile, tokJson);
  const cfg: JsonObject = config ?? {};
  const cfgName = configBytes ? configFile : tokJsonFile;
  const settings = readSettings(cfgName, cfg, tokJson, vocabulary);
  const tokens = readSpecialTokens(cfgName, cfg, vocabulary, { stmFile, stmBytes, addedFile, addedBytes, tokJsonFile, tokJson });

  return {
    vocab: vocabulary.vocab,
    idToVocabToken: vocabulary.idToVocabToken,
    ...tokens,
    settings,
    fastAddedTokenSemantics: vocabulary.fromTokenizerJson,
    configFile: cfgName,
  };
}
