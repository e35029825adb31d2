import type { FastifyServerOptions } from 'fastify';
import type { Engine, EngineEvents } from '../engine/types.js';
import { buildApp, type BlipApp } from './app.js';
import { EngineSlot } from './context.js';
import type { ServiceLimits } from './limits.js';
import { ServiceMetrics } from './metrics.js';

/** The model and engine, opened once the server listens; `release` frees both. */
export interface OpenedEngine {
  engine: Engine;
  /** Closes the engine (finishing its jobs) and disposes the model. */
  release(): Promise<void>;
  /**
   * The checkpoint folder, whose files the page's "run in this browser" mode loads (GET /model/...).
   * Undefined: the server offers no model files.
   */
  checkpointDir?: string;
}

export interface ServiceOptions {
  modelName: string;
  host: string;
  port: number;
  limits?: Partial<ServiceLimits>;
  apiKey?: string;
  logger?: FastifyServerOptions['logger'];
  /** Loads the model and creates the engine, feeding `events` to the metrics. */
  openEngine: (events: Required<EngineEvents>) => Promise<OpenedEngine>;
  /** How long shutdown waits for in-flight requests before cutting their connections. Default 30 s. */
  shutdownGraceMs?: number;
}

export interface RunningService extends BlipApp {
  /** http://host:port of the listening socket (the real port when 0 was asked for). */
  url: string;
  /** Settles when the model is loaded (rejects if loading failed; the server then stops). */
  ready: Promise<void>;
  /** Stops accepting, finishes in-flight requests (bounded), releases the engine and model. */
  close(): Promise<void>;
}

/**
 * Listens first, then loads: /healthz answers at once and /readyz turns 200 when the model is
 * there, so an orchestrator can tell "starting" from "dead" during a load of several seconds.
 */
export async function startService(options: ServiceOptions): Promise<RunningService> {
  const metrics = new ServiceMetrics();
  const slot = new EngineSlot();
  const built = await buildApp({ modelName: options.modelName, limits: options.limits, apiKey: options.apiKey, logger: options.logger, slot, metrics });
  const { app } = built;
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  let opened: OpenedEngine | undefined;
  let closing: Promise<void> | undefined;
  const ready = (async () => {
    const started = performance.now();
    const result = await options.openEngine(metrics.engineEvents);
    if (closing) {
      // Shut down while loading: nothing will use it.
      await result.release();
      return;
    }
    opened = result;
    metrics.modelLoaded((performance.now() - started) / 1000);
    metrics.watchEngine(() => result.engine.stats);
    slot.set(result.engine, result.checkpointDir);
    app.log.info({ model: options.modelName, load_s: Math.round(performance.now() - started) / 1000 }, 'model loaded; ready');
  })();
  ready.catch(() => undefined);

  const close = () => {
    closing ??= (async () => {
      slot.draining = true;
      const grace = setTimeout(() => {
        app.log.warn('shutdown: in-flight requests did not finish in time; closing their connections');
        app.server.closeAllConnections();
      }, options.shutdownGraceMs ?? 30_000);
      grace.unref();
      try {
        // New connections are refused and new requests on kept-alive ones get 503; requests in
        // flight run to the end, through the engine, which is still open.
        await app.close();
      } finally {
        clearTimeout(grace);
        slot.close();
        await opened?.release();
      }
    })();
    return closing;
  };
  return { ...built, url: `http://${host}:${port}`, ready, close };
}
