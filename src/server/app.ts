import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { ApiError, RETRY_AFTER_NOT_READY_S, toApiError } from './api-error.js';
import { bearerAuth } from './auth.js';
import { EngineSlot, type ServiceContext } from './context.js';
import { DEFAULT_LIMITS, type ServiceLimits } from './limits.js';
import { ServiceMetrics } from './metrics.js';
import { embeddingsRoute } from './routes/embeddings.js';
import { healthRoutes } from './routes/health.js';
import { modelFileRoutes } from './routes/model-files.js';
import { pageRoutes } from './routes/page.js';
import { rankRoute } from './routes/rank.js';
import { scoreRoute } from './routes/score.js';
import { summaryOf } from './routes/common.js';
import { MULTIPART_DOCS } from './schemas.js';

export interface AppOptions {
  /** The model as named on the command line; echoed in responses. */
  modelName: string;
  limits?: Partial<ServiceLimits>;
  /** Bearer token required on /v1/* and /metrics; undefined: no authentication. */
  apiKey?: string;
  /** Fastify's pino logger: true (info to stdout), false, or pino options / a stream. */
  logger?: FastifyServerOptions['logger'];
  /** Supplied by the caller that loads the model; a fresh one otherwise. */
  slot?: EngineSlot;
  metrics?: ServiceMetrics;
}

export interface BlipApp {
  app: FastifyInstance;
  context: ServiceContext;
}

/**
 * Paths that run jobs, reveal load or hand out the model's weights (/model/, for the page's
 * browser mode): behind the API key when there is one.
 */
const PROTECTED = /^\/(v1\/|model\/|metrics(\?|$))/;

/**
 * The service's Fastify instance, without the model: the routes ask `context.slot` for the engine
 * and answer 503 until it is there. Starting to listen and loading the model are service.ts's job.
 */
export async function buildApp(options: AppOptions): Promise<BlipApp> {
  const limits: ServiceLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const context: ServiceContext = {
    modelName: options.modelName,
    limits,
    slot: options.slot ?? new EngineSlot(),
    metrics: options.metrics ?? new ServiceMetrics(),
  };
  const app = Fastify({
    logger: options.logger ?? false,
    // One line per request, written in onResponse below (Fastify's own would be two, with URLs only).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: limits.bodyBytes,
    // Closing waits for in-flight requests; idle keep-alive sockets are closed so it can finish.
    forceCloseConnections: 'idle',
    // New requests while draining get our own 503 (onRequest below), in the API's error shape.
    return503OnClosing: false,
    ajv: {
      // A wrong JSON type is the caller's mistake to hear about, not something to coerce ("5" -> 5,
      // "a" -> ["a"]); and unknown properties are refused (additionalProperties: false), not dropped.
      customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false },
    },
  });

  // Only JSON and multipart bodies: Fastify's built-in text/plain parser would hand a handler a string.
  app.removeContentTypeParser('text/plain');
  await app.register(multipart, { throwFileSizeLimit: true });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'blip-itm',
        description: 'BLIP image-text matching: ITM match probability and ITC cosine. Errors are {"error": {"code", "message"}}.',
        version: '1',
      },
      ...(options.apiKey !== undefined && {
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      }),
    },
    transformObject: (documentObject) => {
      const doc = (documentObject as { openapiObject: { paths?: Record<string, Record<string, { requestBody?: { content?: Record<string, unknown> } }>> } }).openapiObject;
      for (const [path, schema] of Object.entries(MULTIPART_DOCS)) {
        const content = doc.paths?.[path]?.post?.requestBody?.content;
        if (content) content['multipart/form-data'] = { schema };
      }
      return doc;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  const authorize = options.apiKey !== undefined ? bearerAuth(options.apiKey) : undefined;
  app.addHook('onRequest', async (request) => {
    if (context.slot.draining) throw new ApiError(503, 'shutting_down', 'the server is shutting down; retry on another instance', RETRY_AFTER_NOT_READY_S);
    // The router matches percent-decoded paths ("/%6Dodel/..." reaches /model/...), so the matched
    // route's pattern is checked as well as the raw URL.
    if (authorize && (PROTECTED.test(request.url) || PROTECTED.test(request.routeOptions.url ?? ''))) authorize(request.headers.authorization);
    // A multipart body is streamed, so Fastify's bodyLimit does not see it; refuse what announces itself too large.
    const length = Number(request.headers['content-length']);
    if (Number.isFinite(length) && length > limits.bodyBytes) {
      throw new ApiError(413, 'body_too_large', `the request body is ${length} bytes, over the limit of ${limits.bodyBytes}`);
    }
  });

  app.addHook('onSend', async (_request, reply) => {
    if (context.slot.draining) reply.header('connection', 'close');
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const seconds = reply.elapsedTime / 1000;
    context.metrics.request(route, request.method, reply.statusCode, seconds);
    const summary = summaryOf(request);
    // No query string (none of our routes takes one, and a caller could put anything there).
    request.log.info({
      method: request.method, path: request.url.split('?')[0], route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10, ...summary,
    }, 'request');
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const api = toApiError(error);
    if (api.status >= 500 && api.status !== 503 && api.status !== 504) request.log.error({ err: error }, 'internal error');
    if (api.retryAfter !== undefined) reply.header('retry-after', String(api.retryAfter));
    if (api.status === 401) reply.header('www-authenticate', 'Bearer');
    // Whatever the handler left half-read is discarded; the connection is not reused after an error mid-body.
    void reply.code(api.status).send({ error: { code: api.code, message: api.message } });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` } });
  });

  healthRoutes(app, context);
  scoreRoute(app, context);
  rankRoute(app, context);
  embeddingsRoute(app, context);
  pageRoutes(app, context);
  modelFileRoutes(app, context);
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return { app, context };
}
