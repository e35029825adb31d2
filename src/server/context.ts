import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Engine, JobOptions } from '../engine/types.js';
import { ApiError, RETRY_AFTER_NOT_READY_S } from './api-error.js';
import type { ServiceLimits } from './limits.js';
import type { ServiceMetrics } from './metrics.js';

/**
 * Holds the engine once the model is loaded. The server listens before that (so /healthz and
 * /readyz answer during a load that takes seconds), and every job route asks here first.
 */
export class EngineSlot {
  private engine: Engine | undefined;
  private closing = false;
  /**
   * Shutting down but still finishing what is in flight: jobs are taken, and every response
   * closes its connection so that kept-alive sockets do not hold the shutdown open.
   */
  draining = false;

  private dir: string | undefined;

  set(engine: Engine, checkpointDir?: string): void {
    this.engine = engine;
    this.dir = checkpointDir;
  }

  /** The loaded model's checkpoint folder, when the service offers its files (see routes/model-files.ts). */
  get checkpointDir(): string | undefined {
    return this.ready ? this.dir : undefined;
  }

  /** From now on jobs are refused with 503 shutting_down. */
  close(): Engine | undefined {
    this.closing = true;
    return this.engine;
  }

  get ready(): boolean {
    return this.engine !== undefined && !this.closing;
  }

  get(): Engine {
    if (this.closing) throw new ApiError(503, 'shutting_down', 'the server is shutting down', RETRY_AFTER_NOT_READY_S);
    if (!this.engine) throw new ApiError(503, 'not_ready', 'the model is still loading; retry shortly', RETRY_AFTER_NOT_READY_S);
    return this.engine;
  }
}

export interface ServiceContext {
  /** The model as named on the command line (what `score --json` prints). */
  modelName: string;
  limits: ServiceLimits;
  slot: EngineSlot;
  metrics: ServiceMetrics;
}

/** What the per-request log line says about the work, without texts or image bytes. */
export interface RequestSummary {
  images?: number;
  texts?: number;
  imageBytes?: number;
}

/**
 * A job's options: the request deadline, and a signal that fires when the client disconnects
 * before its response was sent, so the engine drops the work it has not started.
 */
export function jobOptions(request: FastifyRequest, reply: FastifyReply, limits: ServiceLimits): JobOptions {
  const controller = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) controller.abort();
  };
  reply.raw.once('close', onClose);
  // Gone already (while its body was read)? The request stream itself is destroyed once fully read, so ask the socket.
  if (request.raw.socket?.destroyed) controller.abort();
  return { signal: controller.signal, deadlineMs: limits.deadlineMs };
}
