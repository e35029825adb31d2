import type { FastifyInstance } from 'fastify';
import type { ImageSource } from '../../engine/types.js';
import { jobOptions, type ServiceContext } from '../context.js';
import { checkImages, checkTexts, decodeBase64Image, readMultipart } from '../request-body.js';
import { scoreSchema } from '../schemas.js';
import { jsonBody, setSummary } from './common.js';

interface ScoreJson {
  images: string[];
  texts: string[];
}

/** POST /v1/score: every image against every text, image-major, as `blip-itm score --json`. */
export function scoreRoute(app: FastifyInstance, ctx: ServiceContext): void {
  app.post('/v1/score', { schema: scoreSchema(ctx.limits) }, async (request, reply) => {
    const engine = ctx.slot.get();
    let images: ImageSource[];
    let texts: string[];
    if (request.isMultipart()) {
      ({ images, texts } = await readMultipart(request, { files: 'image', texts: 'text' }, ctx.limits));
    } else {
      const body = jsonBody<ScoreJson>(request.body);
      images = body.images.map((b64, i) => ({ bytes: decodeBase64Image(b64, `images[${i}]`), label: `#${i}` }));
      texts = body.texts;
    }
    setSummary(request, images, texts);
    checkImages(images, request.isMultipart() ? 'image' : 'images', ctx.limits);
    checkTexts(texts, request.isMultipart() ? 'text' : 'texts', ctx.limits);
    const { pairs } = await engine.score({ images, texts }, jobOptions(request, reply, ctx.limits));
    return {
      model: ctx.modelName,
      pairs: pairs.map((p) => ({
        image: images[p.image].label ?? `#${p.image}`,
        text: texts[p.text],
        itm_logits: p.itmLogits,
        itm_probability: p.itmProbability,
        cosine: p.cosine,
      })),
    };
  });
}
