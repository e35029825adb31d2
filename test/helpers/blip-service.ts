import sharp from 'sharp';
import { ScoringEngine } from '../../src/engine/scoring-engine.js';
import type { EngineOptions } from '../../src/engine/types.js';
import { BlipForImageTextRetrieval } from '../../src/model/blip-itm.js';
import type { ServiceLimits } from '../../src/server/limits.js';
import { startService, type RunningService, type ServiceOptions } from '../../src/server/service.js';
import { syntheticPixels } from './image-folder.js';

export const TINY = 'test/fixtures/models/tiny';

/** The real service (real engine, tiny model) on 127.0.0.1 and an ephemeral port. */
export async function startTinyService(
  options: { engine?: EngineOptions; limits?: Partial<ServiceLimits>; apiKey?: string; logger?: ServiceOptions['logger'] } = {},
): Promise<RunningService> {
  const service = await startService({
    modelName: TINY,
    host: '127.0.0.1',
    port: 0,
    limits: options.limits,
    apiKey: options.apiKey,
    logger: options.logger ?? false,
    // As `blip-itm serve` does: the model on its own thread.
    openEngine: async (events) => {
      const engine = await ScoringEngine.fromPretrained(TINY, { prepareThreads: 1, ...options.engine, events });
      return { engine, release: () => engine.close(), checkpointDir: engine.checkpointDir };
    },
  });
  await service.ready;
  return service;
}

/** Synthetic image `i` as PNG bytes (distinct for every i). */
export async function syntheticPng(i: number): Promise<Buffer> {
  const { data, width, height } = syntheticPixels(i);
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export interface Expected {
  itmLogits: [number, number];
  cosine: number;
}

/**
 * The library's numbers for every (image, text), computed as `blip-itm score` does; what every
 * endpoint must reproduce. [image][text].
 */
export async function libraryScores(model: BlipForImageTextRetrieval, images: Uint8Array[], texts: string[]): Promise<Expected[][]> {
  const pixels = await model.processor.preprocessImages(images);
  const imageEnc = await model.encodeImages(pixels);
  const tokens = model.processor.tokenize(texts, { padding: 'longest' });
  const textEnc = await model.encodeTexts(tokens);
  const cos = model.cosine(imageEnc, textEnc);
  const out: Expected[][] = [];
  for (let i = 0; i < images.length; i++) {
    const logits = await model.itmForImage(imageEnc, i, tokens);
    out.push(texts.map((_, j) => ({ itmLogits: [logits.data[2 * j], logits.data[2 * j + 1]], cosine: cos.data[i * texts.length + j] })));
  }
  return out;
}

/** The library's L2-normalised ITC features: images then texts. */
export async function libraryEmbeddings(model: BlipForImageTextRetrieval, images: Uint8Array[], texts: string[]): Promise<{ images: Float32Array[]; texts: Float32Array[] }> {
  const split = (t: { data: Float32Array; dims: readonly number[] }) => {
    const E = t.dims[1];
    return Array.from({ length: t.dims[0] }, (_, i) => t.data.slice(i * E, (i + 1) * E));
  };
  const out = { images: [] as Float32Array[], texts: [] as Float32Array[] };
  if (images.length) out.images = split((await model.encodeImages(await model.processor.preprocessImages(images))).embeds);
  if (texts.length) out.texts = split((await model.encodeTexts(model.processor.tokenize(texts, { padding: 'longest' }))).embeds);
  return out;
}
