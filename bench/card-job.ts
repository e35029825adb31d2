import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { matchProbability } from '../src/tensor.js';
import { peakRssMb } from './peak-rss.js';

/** The model card's job for 1 image x 10 captions: image file in, ITM probability and cosine out. */
export const CAPTIONS = [
  'a woman and a dog sitting together on a beach at sunset',
  'two cats sleeping on a pink blanket next to remote controls',
  'a cup of coffee on a saucer next to a silver spoon',
  'a rocket launching into the sky with a large plume of smoke',
  'a man riding a motorcycle down a winding mountain road',
  'an astronaut in a white suit standing next to a flag',
  'a plate of food with broccoli rice and grilled chicken',
  'a group of people playing frisbee in a green park',
  'a red double decker bus driving down a city street',
  'a small boat floating on a calm lake near the mountains',
];

export async function cardJob(model: BlipForImageTextRetrieval, image: string): Promise<Array<{ probability: number; cosine: number }>> {
  const visionBefore = model.visionRuns;
  const images = await model.encodeImages(await model.processor.preprocessImages([image]));
  const texts = model.processor.tokenize(CAPTIONS);
  const cosine = model.cosine(images, await model.encodeTexts(texts));
  const itm = await model.itmForImage(images, 0, texts);
  if (model.visionRuns - visionBefore !== 1) throw new Error('the image must be encoded exactly once');
  return CAPTIONS.map((_, j) => ({ probability: matchProbability(itm.data[2 * j], itm.data[2 * j + 1]), cosine: cosine.data[j] }));
}

/**
 * As a script (`card-job.ts <dir> <image> [threads] [dtype] [weights cache]`): one fresh process loads the model (a) and runs the job once, cold (what a
 * one-shot CLI call pays); prints the timings and the process's peak resident memory (f).
 * bench/run.ts runs it bundled as plain JavaScript (see bundleCardJob there): like the `blip-itm`
 * command, with no TypeScript loader in the process.
 */
if (/card-job\.(ts|mjs)$/.test(process.argv[1] ?? '')) {
  const [dir, image, threads, dtype, weightsCacheDir] = process.argv.slice(2);
  const t0 = performance.now();
  const model = await BlipForImageTextRetrieval.fromPretrained(dir, {
    ...(threads ? { intraOpThreads: Number(threads) } : {}),
    ...(dtype ? { dtype: dtype as 'fp32' | 'fp16' | 'int8' } : {}),
    ...(weightsCacheDir ? { weightsCacheDir } : {}),
  });
  const loadS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  await cardJob(model, image);
  const coldS = (performance.now() - t1) / 1000;
  await model.dispose();
  const derived = model.source.derived;
  process.stdout.write(`${JSON.stringify({
    load_s: loadS, card_job_cold_s: coldS, peak_rss_mb: peakRssMb(),
    converted_s: derived?.seconds ?? 0, converted_written: derived?.written ?? false,
  })}\n`);
}
