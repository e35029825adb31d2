import { BlipForImageTextRetrieval } from '../../src/model/blip-itm.js';
import { CAPTIONS } from './workload.js';

/**
 * The service's work without the service: each image scored against the captions with the library,
 * one after the other, as `blip-itm score` does (decode, vision, text, cosine, ITM). Returns jobs/s
 * over `images` after one warm-up job.
 */
export async function modelOnlyRate(modelDir: string, images: Buffer[], threads?: number): Promise<{ jobs: number; seconds: number; jobs_per_s: number }> {
  const model = await BlipForImageTextRetrieval.fromPretrained(modelDir, { intraOpThreads: threads });
  try {
    const job = async (bytes: Buffer) => {
      const pixels = await model.processor.preprocessImages([bytes]);
      const imageEnc = await model.encodeImages(pixels);
      const tokens = model.processor.tokenize(CAPTIONS, { padding: 'longest' });
      const textEnc = await model.encodeTexts(tokens);
      model.cosine(imageEnc, textEnc);
      await model.itmForImage(imageEnc, 0, tokens);
    };
    await job(images[0]);
    const t0 = performance.now();
    for (const im of images) await job(im);
    const seconds = (performance.now() - t0) / 1000;
    return { jobs: images.length, seconds, jobs_per_s: images.length / seconds };
  } finally {
    await model.dispose();
  }
}
