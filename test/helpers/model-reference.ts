import type { BlipForImageTextRetrieval } from '../../src/model/blip-itm.js';
import { matchProbability } from '../../src/tensor.js';

export interface ReferenceScore {
  itmLogits: [number, number];
  itmProbability: number;
  cosine: number;
}

/**
 * Direct BlipForImageTextRetrieval calls, as `blip-itm score` makes them, for one image against
 * its captions: the yardstick the filter's rows are compared with (not the engine's code path).
 */
export async function referenceScores(
  model: BlipForImageTextRetrieval,
  image: string | Uint8Array,
  captions: string[],
  itmTextStart: 'cls' | 'enc' = 'cls',
): Promise<ReferenceScore[]> {
  const enc = await model.encodeImages(await model.processor.preprocessImages([image]));
  const tokens = model.processor.tokenize(captions, { padding: 'longest' });
  const texts = await model.encodeTexts(tokens);
  const cos = model.cosine(enc, texts);
  const logits = await model.itmForImage(enc, 0, tokens, { itmTextStart });
  return captions.map((_, j) => {
    const l0 = logits.data[2 * j];
    const l1 = logits.data[2 * j + 1];
    return { itmLogits: [l0, l1], itmProbability: matchProbability(l0, l1), cosine: cos.data[j] };
  });
}
