import type { FastifyInstance } from 'fastify';
import { ApiError } from '../api-error.js';
import { jobOptions, type ServiceContext } from '../context.js';
import { checkImages, checkTexts, decodeBase64Image } from '../request-body.js';
import { embeddingsSchema } from '../schemas.js';
import { jsonBody, setSummary } from './common.js';

interface EmbeddingsJson {
  input: string | string[];
  modality?: 'text' | 'image';
  model?: string;
  encoding_format?: 'float' | 'base64';
}

/** POST /v1/embeddings: L2-normalised ITC features, in OpenAI's embeddings shape. */
export function embeddingsRoute(app: FastifyInstance, ctx: ServiceContext): void {
  app.post('/v1/embeddings', { schema: embeddingsSchema(ctx.limits) }, async (request, reply) => {
    const engine = ctx.slot.get();
    if (request.isMultipart()) throw new ApiError(415, 'unsupported_media_type', '/v1/embeddings takes JSON: {"input": [...], "modality": "text" | "image"}');
    const body = jsonBody<EmbeddingsJson>(request.body);
    const inputs = typeof body.input === 'string' ? [body.input] : body.input;
    const modality = body.modality ?? 'text';
    let features: Float32Array[];
    if (modality === 'image') {
      const images = inputs.map((b64, i) => ({ bytes: decodeBase64Image(b64, `input[${i}]`), label: `#${i}` }));
      setSummary(request, images, []);
      checkImages(images, 'input', ctx.limits);
      features = await engine.embedImages(images, jobOptions(request, reply, ctx.limits));
    } else {
      setSummary(request, [], inputs);
      checkTexts(inputs, 'input', ctx.limits);
      features = await engine.embedTexts(inputs, jobOptions(request, reply, ctx.limits));
    }
    const base64 = body.encoding_format === 'base64';
    return {
      object: 'list',
      model: ctx.modelName,
      data: features.map((f, index) => ({
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64') : Array.from(f),
      })),
    };
  });
}
