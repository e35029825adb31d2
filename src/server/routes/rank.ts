import type { FastifyInstance } from 'fastify';
import type { ImageSource } from '../../engine/types.js';
import { ApiError, malformed } from '../api-error.js';
import { jobOptions, type ServiceContext } from '../context.js';
import { checkTexts, decodeBase64Image, readMultipart } from '../request-body.js';
import { rankSchema } from '../schemas.js';
import { jsonBody, setSummary } from './common.js';

interface RankJson {
  image: string;
  documents: string[];
  top_n?: number;
}

/** POST /v1/rank: captions for one image, best first, in the rerank APIs' shape. */
export function rankRoute(app: FastifyInstance, ctx: ServiceContext): void {
  app.post('/v1/rank', { schema: rankSchema(ctx.limits) }, async (request, reply) => {
    const engine = ctx.slot.get();
    let image: ImageSource;
    let documents: string[];
    let topN: number | undefined;
    if (request.isMultipart()) {
      const parsed = await readMultipart(request, { files: 'image', texts: 'documents', scalars: ['top_n'] }, ctx.limits);
      if (parsed.images.length !== 1) {
        throw new ApiError(422, parsed.images.length === 0 ? 'nothing_to_score' : 'too_many_images', `give exactly one "image" file part, got ${parsed.images.length}`);
      }
      image = parsed.images[0];
      documents = parsed.texts;
      if (parsed.scalars.top_n !== undefined) topN = parseTopN(parsed.scalars.top_n);
    } else {
      const body = jsonBody<RankJson>(request.body);
      image = { bytes: decodeBase64Image(body.image, 'image'), label: '#0' };
      documents = body.documents;
      topN = body.top_n;
    }
    setSummary(request, [image], documents);
    checkTexts(documents, 'documents', ctx.limits);
    const { results } = await engine.rank({ image, texts: documents, topN }, jobOptions(request, reply, ctx.limits));
    return {
      model: ctx.modelName,
      results: results.map((r) => ({
        index: r.index, text: r.text, relevance_score: r.itmProbability, itm_logits: r.itmLogits, cosine: r.cosine,
      })),
    };
  });
}

function parseTopN(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw malformed(`top_n must be a positive integer, got ${JSON.stringify(value.slice(0, 40))}`);
  return n;
}
