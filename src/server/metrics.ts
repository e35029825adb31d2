import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineEvents, EngineStage, EngineStats } from '../engine/types.js';

/**
 * The service's Prometheus metrics, in a registry of its own (so two servers in one process, as
 * in the tests, do not share counters). Engine figures arrive through EngineEvents; the queue depth
 * and cache size are read from the engine's stats at scrape time.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route'>;
  private readonly batchSize: Histogram<'stage'>;
  private readonly batchSeconds: Histogram<'stage'>;
  private readonly cacheLookups: Counter<'result'>;
  private readonly modelLoad: Gauge;
  private statsSource: (() => EngineStats) | undefined;

  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'blip_' });
    this.requests = new Counter({
      name: 'blip_http_requests_total', help: 'HTTP requests answered, by route, method and status', labelNames: ['route', 'method', 'status'], registers,
    });
    this.latency = new Histogram({
      name: 'blip_http_request_duration_seconds', help: 'Time from request to response, by route', labelNames: ['route'], registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    });
    this.batchSize = new Histogram({
      name: 'blip_engine_batch_size', help: 'Items per model run, by stage (prepare, vision, text, itm)', labelNames: ['stage'], registers,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    });
    this.batchSeconds = new Histogram({
      name: 'blip_engine_batch_duration_seconds', help: 'Seconds per model run, by stage', labelNames: ['stage'], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.cacheLookups = new Counter({
      name: 'blip_engine_image_cache_lookups_total', help: 'Image-encoding cache lookups, by result (hit, miss)', labelNames: ['result'], registers,
    });
    this.modelLoad = new Gauge({ name: 'blip_model_load_seconds', help: 'Seconds the model took to load', registers });
    const stats = () => this.statsSource?.();
    new Gauge({
      name: 'blip_engine_queue_depth', help: 'Jobs accepted by the engine and not yet finished', registers,
      collect() { this.set(stats()?.queueDepth ?? 0); },
    });
    new Gauge({
      name: 'blip_engine_image_cache_entries', help: 'Image encodings held in the cache', registers,
      collect() { this.set(stats()?.cacheEntries ?? 0); },
    });
    new Gauge({
      name: 'blip_engine_image_cache_bytes', help: 'Bytes held by the image-encoding cache', registers,
      collect() { this.set(stats()?.cacheBytes ?? 0); },
    });
    // Both results appear at 0 from the start, so rate() works before the first hit.
    this.cacheLookups.inc({ result: 'hit' }, 0);
    this.cacheLookups.inc({ result: 'miss' }, 0);
  }

  /** The hooks to hand the engine when it is created. */
  readonly engineEvents: Required<EngineEvents> = {
    batch: (stage: EngineStage, size: number, seconds: number) => {
      this.batchSize.observe({ stage }, size);
      this.batchSeconds.observe({ stage }, seconds);
    },
    cache: (hit: boolean) => this.cacheLookups.inc({ result: hit ? 'hit' : 'miss' }),
  };

  /** Engine stats are read at scrape time from here once the engine exists. */
  watchEngine(stats: () => EngineStats): void {
    this.statsSource = stats;
  }

  modelLoaded(seconds: number): void {
    this.modelLoad.set(seconds);
  }

  request(route: string, method: string, status: number, seconds: number): void {
    this.requests.inc({ route, method, status: String(status) });
    this.latency.observe({ route }, seconds);
  }

  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
