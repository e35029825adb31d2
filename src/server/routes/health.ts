import type { FastifyInstance } from 'fastify';
import type {} from '@fastify/swagger';
import { RETRY_AFTER_NOT_READY_S } from '../api-error.js';
import type { ServiceContext } from '../context.js';
import { errorSchema } from '../schemas.js';

/** GET /healthz (the process answers), /readyz (the model is loaded), /metrics (Prometheus text). */
export function healthRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  app.get('/healthz', { schema: { summary: 'The process is up', response: { 200: { type: 'object', properties: { status: { type: 'string' } } } } } }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    schema: {
      summary: 'The model is loaded and jobs are accepted',
      response: { 200: { type: 'object', properties: { status: { type: 'string' }, model: { type: 'string' } } }, 503: errorSchema },
    },
  }, async (_request, reply) => {
    if (ctx.slot.ready) return { status: 'ready', model: ctx.modelName };
    reply.code(503).header('retry-after', String(RETRY_AFTER_NOT_READY_S));
    return { error: { code: 'not_ready', message: 'the model is not loaded (loading, or shutting down)' } };
  });

  app.get('/metrics', { schema: { summary: 'Prometheus metrics', produces: ['text/plain'] } }, async (_request, reply) => {
    reply.header('content-type', ctx.metrics.contentType);
    return ctx.metrics.text();
  });
}
