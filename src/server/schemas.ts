import type { ServiceLimits } from './limits.js';

/**
 * JSON Schemas of the API: Fastify validates JSON bodies with them (types and shape: a wrong type
 * is a 400) and @fastify/swagger publishes them at /openapi.json. Counts and lengths are enforced
 * in code (request-body.ts) because their status is 422/413, not 400; the schemas state them in
 * their descriptions so the documentation shows the server's real figures.
 */

const base64Image = {
  type: 'string',
  description: 'image file bytes (JPEG, PNG, WebP, GIF, TIFF, AVIF), base64 or a data: URL; never a URL to fetch',
} as const;

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

const logits = { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2, description: 'ITM logits [no match, match]' } as const;

function errorResponses(statuses: number[]): Record<number, unknown> {
  const descriptions: Record<number, string> = {
    400: 'malformed body (bad JSON, wrong types, malformed multipart)',
    401: 'missing or wrong API key',
    413: 'body or image too large',
    415: 'not an image, or a body that is neither JSON nor multipart',
    422: 'too many texts or images, a text too long, or nothing to score',
    503: 'queue full or model not ready (see Retry-After)',
    504: 'not finished within the request deadline',
  };
  return Object.fromEntries(statuses.map((s) => [s, { description: descriptions[s], ...errorSchema }]));
}

const JOB_ERRORS = [400, 401, 413, 415, 422, 503, 504];

export function scoreSchema(limits: ServiceLimits) {
  const json = {
    type: 'object',
    required: ['images', 'texts'],
    additionalProperties: false,
    properties: {
      images: { type: 'array', items: base64Image, description: `images, at most ${limits.imagesPerRequest}` },
      texts: { type: 'array', items: { type: 'string' }, description: `captions, at most ${limits.textsPerRequest}, each at most ${limits.charsPerText} characters` },
    },
  };
  return {
    summary: 'Score every image against every text',
    description: 'ITM match probability and ITC cosine for every (image, text) pair, image-major, as `blip-itm score --json`. '
      + 'Send JSON, or multipart/form-data with `image` file parts and `text` fields.',
    body: { content: { 'application/json': { schema: json } } },
    response: {
      200: {
        type: 'object',
        required: ['model', 'pairs'],
        properties: {
          model: { type: 'string' },
          pairs: {
            type: 'array',
            items: {
              type: 'object',
              required: ['image', 'text', 'itm_logits', 'itm_probability', 'cosine'],
              properties: {
                image: { type: 'string', description: 'the part\'s filename, or "#<index>" for JSON' },
                text: { type: 'string' },
                itm_logits: logits,
                itm_probability: { type: 'number' },
                cosine: { type: 'number' },
              },
            },
          },
        },
      },
      ...errorResponses(JOB_ERRORS),
    },
  };
}

export function rankSchema(limits: ServiceLimits) {
  const json = {
    type: 'object',
    required: ['image', 'documents'],
    additionalProperties: false,
    properties: {
      image: base64Image,
      documents: { type: 'array', items: { type: 'string' }, description: `captions to rank, at most ${limits.textsPerRequest}, each at most ${limits.charsPerText} characters` },
      top_n: { type: 'integer', minimum: 1, description: 'return only the best N (default: all)' },
    },
  };
  return {
    summary: 'Rank captions for one image',
    description: 'Cohere/Jina rerank shape; `relevance_score` is the ITM match probability. Sorted best first (by the ITM logit '
      + 'difference, ties by cosine, then by index). Send JSON, or multipart with one `image` file part, `documents` fields and an optional `top_n` field.',
    body: { content: { 'application/json': { schema: json } } },
    response: {
      200: {
        type: 'object',
        required: ['model', 'results'],
        properties: {
          model: { type: 'string' },
          results: {
            type: 'array',
            items: {
              type: 'object',
              required: ['index', 'text', 'relevance_score', 'itm_logits', 'cosine'],
              properties: {
                index: { type: 'integer', description: 'position in documents' },
                text: { type: 'string' },
                relevance_score: { type: 'number', description: 'ITM match probability' },
                itm_logits: logits,
                cosine: { type: 'number' },
              },
            },
          },
        },
      },
      ...errorResponses(JOB_ERRORS),
    },
  };
}

export function embeddingsSchema(limits: ServiceLimits) {
  const json = {
    type: 'object',
    required: ['input'],
    additionalProperties: false,
    properties: {
      input: {
        anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
        description: `texts (at most ${limits.textsPerRequest}, each at most ${limits.charsPerText} characters) or base64 images (at most ${limits.imagesPerRequest})`,
      },
      modality: { type: 'string', enum: ['text', 'image'], default: 'text' },
      model: { type: 'string', description: 'accepted for OpenAI compatibility and ignored: the server has one model' },
      encoding_format: { type: 'string', enum: ['float', 'base64'], default: 'float', description: 'base64: little-endian float32 bytes' },
    },
  };
  return {
    summary: 'L2-normalised ITC features of texts or images',
    description: 'OpenAI embeddings shape. Text and image features share one space: their dot product is the ITC cosine.',
    body: { content: { 'application/json': { schema: json } } },
    response: {
      200: {
        type: 'object',
        required: ['object', 'model', 'data'],
        properties: {
          object: { type: 'string', enum: ['list'] },
          model: { type: 'string' },
          data: {
            type: 'array',
            items: {
              type: 'object',
              required: ['object', 'index', 'embedding'],
              properties: {
                object: { type: 'string', enum: ['embedding'] },
                index: { type: 'integer' },
                embedding: { anyOf: [{ type: 'array', items: { type: 'number' } }, { type: 'string' }] },
              },
            },
          },
        },
      },
      ...errorResponses(JOB_ERRORS),
    },
  };
}

/** Multipart bodies are read by the handlers, so their schemas exist for the documentation only. */
export const MULTIPART_DOCS: Record<string, unknown> = {
  '/v1/score': {
    type: 'object',
    required: ['image', 'text'],
    properties: {
      image: { type: 'array', items: { type: 'string', format: 'binary' }, description: 'image files' },
      text: { type: 'array', items: { type: 'string' }, description: 'captions, one per field' },
    },
  },
  '/v1/rank': {
    type: 'object',
    required: ['image', 'documents'],
    properties: {
      image: { type: 'string', format: 'binary' },
      documents: { type: 'array', items: { type: 'string' } },
      top_n: { type: 'integer', minimum: 1 },
    },
  },
};
