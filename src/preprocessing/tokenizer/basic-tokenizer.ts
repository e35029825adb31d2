/**
 * transformers' `BasicTokenizer` (tokenization_bert.py): delete NUL, U+FFFD and every category
 * C* character except \t \n \r; turn \t \n \r and category Zs into spaces; put spaces around CJK
 * ideographs; NFC; split on whitespace; per word: lower-case, NFD + drop Mn (strip_accents null
 * follows lower-casing); split off every punctuation character.
 *
 * Also the Python whitespace helpers (`str.split`, `str.strip`) the other stages need, since
 * JavaScript's `\s` is not Python's `str.isspace`.
 */
import type { TokenizerSettings } from './types.js';

// Character classes (transformers' _is_whitespace / _is_control / _is_punctuation)

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

/** Python's `text.split()`: split on runs of whitespace, no empty pieces. */
export function pySplit(text: string): string[] {
  return text.split(PY_WHITESPACE_RUN).filter((s) => s.length > 0);
}

/** Python's `text.lstrip()`. */
export function pyLStrip(text: string): string {
  return text.replace(PY_WHITESPACE_LEADING, '');
}

/** Python's `text.rstrip()`. */
export function pyRStrip(text: string): string {
  return text.replace(PY_WHITESPACE_TRAILING, '');
}

function isPunctuation(ch: string): boolean {
  return PUNCTUATION_CHAR.test(ch);
}

/** `_run_strip_accents`. */
function stripAccents(token: string): string {
  return token.normalize('NFD').replace(NONSPACING_MARKS, '');
}

export type BasicTokenizerOptions = Pick<
  TokenizerSettings,
  'doLowerCase' | 'tokenizeChineseChars' | 'stripAccents' | 'doSplitOnPunc' | 'neverSplit'
>;

export class BasicTokenizer {
  /** `self.never_split`: the configured list alone (BertTokenizer._tokenize checks it). */
  readonly neverSplit: ReadonlySet<string>;
  /**
   * What `tokenize` keeps whole: `never_split` plus the special tokens, which BertTokenizer
   * passes in as `never_split=self.all_special_tokens`.
   */
  private readonly keepWhole: ReadonlySet<string>;

  constructor(
    private readonly options: BasicTokenizerOptions,
    specialTokens: readonly string[],
  ) {
    this.neverSplit = new Set(options.neverSplit);
    this.keepWhole = new Set([...options.neverSplit, ...specialTokens]);
  }

  /** BasicTokenizer.tokenize. */
  tokenize(text: string): string[] {
    const s = this.options;
    text = text.replace(DELETED_CHARS, '').replace(WHITESPACE_CHARS, ' ');
    if (s.tokenizeChineseChars) text = text.replace(CJK_CHARS, ' $& ');
    text = text.normalize('NFC');
    const out: string[] = [];
    for (let token of pySplit(text)) {
      if (this.keepWhole.has(token)) {
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
}
