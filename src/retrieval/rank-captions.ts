import { UsageError } from '../errors.js';
import type { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import { matchProbability } from '../tensor.js';
import type { ImageInput } from '../preprocessing/image-decode.js';
import { topK } from './top-k.js';

/** Default number of captions rescored with ITM: all of them up to this many, else this many. */
export const DEFAULT_RERANK = 128;

export interface RankCaptionsOptions {
  /**
   * How many captions (the best by cosine) get the ITM score. Default: all when there are at most
   * 128, else 128. 0: cosine only.
   */
  rerank?: number;
  /** First ITM token: 'cls' (default, as transformers) or 'enc' (original BLIP). */
  itmTextStart?: 'cls' | 'enc';
}

export interface RankedCaption {
  /** Position of the caption in the input list. */
  index: number;
  text: string;
  /** ITC cosine similarity. */
  cosine: number;
  /** ITM logits [no match, match]; null when the caption was not reranked. */
  itmLogits: [number, number] | null;
  /** softmax(itmLogits)[1]; null when the caption was not reranked. */
  itmProbability: number | null;
}

/**
 * Ranks captions for one image. The image is encoded once; every caption gets the ITC cosine,
 * and the `rerank` best by cosine get the ITM match probability (one cross-attention key/value
 * pass for the image, broadcast over those captions).
 *
 * Order: the reranked captions first, by ITM match probability (compared as the logit difference
 * l1 - l0, so probabilities that round to 1 still order), then the others by cosine; equal keys
 * keep the higher cosine, then the lower input index, first.
 */
export async function rankCaptions(
  model: BlipForImageTextRetrieval,
  image: ImageInput,
  captions: string[],
  options: RankCaptionsOptions = {},
): Promise<RankedCaption[]> {
  if (captions.length === 0) throw new UsageError('rankCaptions: give at least one caption');
  const rerank = Math.min(captions.length, options.rerank ?? (captions.length <= DEFAULT_RERANK ? captions.length : DEFAULT_RERANK));
  if (!Number.isInteger(rerank) || rerank < 0) throw new UsageError(`rerank must be a non-negative integer, got ${options.rerank}`);
  const imageEnc = await model.encodeImages(await model.processor.preprocessImages([image]));
  const tokens = model.processor.tokenize(captions);
  const textEnc = await model.encodeTexts(tokens);
  const cosine = model.cosine(imageEnc, textEnc).data;
  const ranked: RankedCaption[] = captions.map((text, index) => ({ index, text, cosine: cosine[index], itmLogits: null, itmProbability: null }));
  if (rerank > 0) {
    const best = topK(cosine, rerank).indices;
    const logits = await model.itmPairs(imageEnc, tokens, [...best].map((text) => ({ image: 0, text })), { itmTextStart: options.itmTextStart ?? 'cls' });
    best.forEach((t, r) => {
      const l0 = logits.data[2 * r];
      const l1 = logits.data[2 * r + 1];
      ranked[t].itmLogits = [l0, l1];
      ranked[t].itmProbability = matchProbability(l0, l1);
    });
  }
  return ranked.sort(compareRanked);
}

function compareRanked(a: RankedCaption, b: RankedCaption): number {
  if ((a.itmLogits === null) !== (b.itmLogits === null)) return a.itmLogits === null ? 1 : -1;
  if (a.itmLogits !== null && b.itmLogits !== null) {
    const da = a.itmLogits[1] - a.itmLogits[0];
    const db = b.itmLogits[1] - b.itmLogits[0];
    if (da !== db) return db - da;
  }
  if (a.cosine !== b.cosine) return b.cosine - a.cosine;
  return a.index - b.index;
}
