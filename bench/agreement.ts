import type { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { matchProbability } from '../src/tensor.js';
import { CAPTIONS } from './card-job.js';

/** The 4 images of the agreement check (fixtures), each scored against the card job's 10 captions. */
export const AGREEMENT_IMAGES = [
  'test/fixtures/images/coco_000000039769.png',
  'test/fixtures/images/skimage_chelsea.png',
  'test/fixtures/images/skimage_coffee.png',
  'test/fixtures/images/skimage_rocket.jpg',
];

export interface ScoreGrid {
  /** [image][caption] ITM match probability. */
  prob: number[][];
  /** [image][caption] ITC cosine. */
  cosine: number[][];
  /** [image][caption] ITM logit difference l1 - l0 (the ranking key). */
  margin: number[][];
}

export async function scoreGrid(model: BlipForImageTextRetrieval): Promise<ScoreGrid> {
  const images = await model.encodeImages(await model.processor.preprocessImages(AGREEMENT_IMAGES));
  const texts = model.processor.tokenize(CAPTIONS);
  const cos = model.cosine(images, await model.encodeTexts(texts));
  const grid: ScoreGrid = { prob: [], cosine: [], margin: [] };
  for (let i = 0; i < AGREEMENT_IMAGES.length; i++) {
    const itm = await model.itmForImage(images, i, texts);
    grid.prob.push(CAPTIONS.map((_, j) => matchProbability(itm.data[2 * j], itm.data[2 * j + 1])));
    grid.margin.push(CAPTIONS.map((_, j) => itm.data[2 * j + 1] - itm.data[2 * j]));
    grid.cosine.push(CAPTIONS.map((_, j) => cos.data[i * CAPTIONS.length + j]));
  }
  return grid;
}

const argmax = (xs: number[]): number => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

/** Max abs differences against `ref`, and the fraction of images whose best caption by ITM agrees. */
export function agreement(ref: ScoreGrid, other: ScoreGrid): { maxAbsProbDiff: number; maxAbsCosineDiff: number; top1Agreement: number } {
  let p = 0;
  let c = 0;
  let same = 0;
  ref.prob.forEach((row, i) => {
    row.forEach((v, j) => {
      p = Math.max(p, Math.abs(v - other.prob[i][j]));
      c = Math.max(c, Math.abs(ref.cosine[i][j] - other.cosine[i][j]));
    });
    if (argmax(ref.margin[i]) === argmax(other.margin[i])) same++;
  });
  return { maxAbsProbDiff: p, maxAbsCosineDiff: c, top1Agreement: same / ref.prob.length };
}
