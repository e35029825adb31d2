/**
 * BLIP's caption clean-up for retrieval evaluation: `pre_caption` in the original code
 * (salesforce/BLIP `data/utils.py`), used with `max_words` 30 by `coco_karpathy_retrieval_eval`
 * and `flickr30k_retrieval_eval`:
 *
 *   caption = re.sub(r"([.!\"()*#:;~])", ' ', caption.lower())
 *   caption = re.sub(r"\s{2,}", ' ', caption)
 *   caption = caption.rstrip('\n')
 *   caption = caption.strip(' ')
 *   words = caption.split(' ')
 *   if len(words) > max_words: caption = ' '.join(words[:max_words])
 *
 * Python's `\s` (str patterns) is the set of characters for which `str.isspace()` is true. It is
 * not JavaScript's `\s`: it adds U+001C-U+001F and U+0085 and lacks U+FEFF, so it is spelled out.
 * Only the space character separates words; a lone tab or no-break space is neither squeezed nor
 * counted as a word boundary (as in the original).
 */

/** BLIP's default for the retrieval test sets (LAVIS's `blip_caption` processor uses 50). */
export const PRE_CAPTION_MAX_WORDS = 30;

const PUNCTUATION = /[.!"()*#:;~]/g;
const PYTHON_WHITESPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WHITESPACE_RUN = new RegExp(`[${PYTHON_WHITESPACE}]{2,}`, 'g');

/** `pre_caption(caption, max_words)` of the original BLIP code. */
export function preCaption(caption: string, maxWords: number = PRE_CAPTION_MAX_WORDS): string {
  if (!Number.isInteger(maxWords) || maxWords < 1) throw new RangeError(`maxWords must be a positive integer, got ${maxWords}`);
  let c = caption.toLowerCase().replace(PUNCTUATION, ' ');
  c = c.replace(WHITESPACE_RUN, ' ');
  c = c.replace(/\n+$/, '');
  c = c.replace(/^ +/, '').replace(/ +$/, '');
  const words = c.split(' ');
  return words.length > maxWords ? words.slice(0, maxWords).join(' ') : c;
}
