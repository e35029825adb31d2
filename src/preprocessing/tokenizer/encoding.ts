/**
 * From token ids to model inputs and back to text, the parts of transformers'
 * `PreTrainedTokenizerBase` that do not depend on the vocabulary: option checks, truncation
 * (`prepare_for_model` for one sequence), padding a batch into int64 rows (`pad`), the
 * truncation warnings, and `clean_up_tokenization` for decoding.
 */
import { UsageError } from '../../errors.js';
import type { BatchEncoding, Encoding, PaddingOption } from './types.js';

export function checkTruncation(t: unknown): void {
  if (t !== true && t !== false && t !== 'auto') {
    throw new UsageError(`truncation must be true, false or 'auto', got ${JSON.stringify(t)}`);
  }
}

export function checkPadding(padding: unknown): void {
  if (padding !== false && padding !== true && padding !== 'longest' && padding !== 'max_length') {
    throw new UsageError(`padding must be false, true, 'longest' or 'max_length', got ${JSON.stringify(padding)}`);
  }
}

/** The length limit of a call: `maxLength` when given (a positive integer), else the model's. */
export function resolveMaxLength(maxLength: number | undefined, modelMaxLength: number): number {
  if (maxLength === undefined) return modelMaxLength;
  if (typeof maxLength !== 'number' || !Number.isInteger(maxLength) || maxLength < 1) {
    throw new UsageError(`maxLength must be a positive integer, got ${String(maxLength)}`);
  }
  return maxLength;
}

/**
 * prepare_for_model's truncation for one sequence: how many tokens to drop so that the ids plus
 * `numSpecial` special tokens fit `limit`, dropped from `side`. Returns the kept ids and tokens.
 */
export function truncate(
  ids: number[],
  tokens: string[],
  numSpecial: number,
  limit: number,
  side: 'left' | 'right',
): { ids: number[]; tokens: string[]; removed: number } {
  if (ids.length + numSpecial <= limit) return { ids, tokens, removed: 0 };
  const removed = ids.length + numSpecial - limit;
  if (removed >= ids.length) {
    // transformers logs an error and leaves the sequence untruncated here; refuse instead.
    throw new UsageError(
      `maxLength ${limit} leaves no room for text after the ${numSpecial} special tokens; use at least ${numSpecial + 1}`,
    );
  }
  if (side === 'left') return { ids: ids.slice(removed), tokens: tokens.slice(removed), removed };
  return { ids: ids.slice(0, ids.length - removed), tokens: tokens.slice(0, tokens.length - removed), removed };
}

const SILENCE_HINT = '(pass truncation: true to silence this, or false to keep every token)';

/** The `'auto'` truncation warning for one text, or undefined when nothing was cut. */
export function truncationWarning(enc: Encoding, limit: number): string | undefined {
  if (enc.truncatedTokens === 0) return undefined;
  return (
    `text of ${enc.inputIds.length + enc.truncatedTokens} tokens is longer than the maximum of ${limit}; ` +
    `truncated to ${enc.inputIds.length} ${SILENCE_HINT}`
  );
}

/** The `'auto'` truncation warning for a batch, or undefined when nothing was cut. */
export function batchTruncationWarning(encs: readonly Encoding[], limit: number): string | undefined {
  const cut = encs.map((e, i) => [i, e] as const).filter(([, e]) => e.truncatedTokens > 0);
  if (cut.length === 0) return undefined;
  const which = cut.map(([i, e]) => `#${i} (${e.inputIds.length + e.truncatedTokens} tokens)`).join(', ');
  return `${cut.length} of ${encs.length} texts longer than the maximum of ${limit} tokens were truncated: ${which} ${SILENCE_HINT}`;
}

/** How wide the padded batch is; refuses rows that cannot be made rectangular as asked. */
function batchWidth(encs: readonly Encoding[], padding: PaddingOption, limit: number): number {
  const longest = encs.reduce((m, e) => Math.max(m, e.inputIds.length), 0);
  if (padding === false) {
    if (encs.some((e) => e.inputIds.length !== longest)) {
      throw new UsageError('texts give different numbers of tokens; use padding to make one batch');
    }
    return longest;
  }
  if (padding === 'max_length') {
    const over = encs.findIndex((e) => e.inputIds.length > limit);
    if (over >= 0) {
      throw new UsageError(
        `texts[${over}] has ${encs[over].inputIds.length} tokens, more than max_length ${limit}; enable truncation`,
      );
    }
    return limit;
  }
  return longest;
}

/** `pad`: the rows padded with `padId` on `side` to one width, as int64 tensors and plain rows. */
export function padBatch(
  encs: readonly Encoding[],
  padding: PaddingOption,
  limit: number,
  padId: number,
  side: 'left' | 'right',
): BatchEncoding {
  const width = batchWidth(encs, padding, limit);
  const batch = encs.length;
  const inputIds = new BigInt64Array(batch * width);
  const attentionMask = new BigInt64Array(batch * width);
  const inputIdsList: number[][] = [];
  const attentionMaskList: number[][] = [];
  const left = side === 'left';
  encs.forEach((e, r) => {
    const padCount = width - e.inputIds.length;
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

/** transformers' `clean_up_tokenization`: no space before punctuation and English contractions. */
export function cleanUpTokenization(text: string): string {
  return text
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
