import sharp from 'sharp';
import autocannon from 'autocannon';
import { metricValue } from './serve-process.js';

/** The captions every request scores (12 words each, as the engine benchmark's). */
export const CAPTIONS = [
  'a woman and her dog sitting together on a sandy beach at sunset',
  'two cats lying on a pink blanket next to two remote controls',
  'a red double decker bus driving down a busy city street today',
  'a plate of fresh fruit and vegetables on a wooden kitchen table',
];

/** `count` distinct JPEGs of random noise (distinct bytes, so the cache cannot serve them). */
export async function randomImages(count: number, width = 640, height = 480): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    out.push(await sharp({ create: { width, height, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 }, noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).jpeg({ quality: 85 }).toBuffer());
  }
  return out;
}

export interface LoadResult {
  requests: number;
  seconds: number;
  requests_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  non_2xx: number;
  /** Responses by HTTP status. */
  statuses: Record<string, number>;
}

/**
 * `connections` clients, each sending POST /v1/score (1 image x the 4 captions, JSON base64) back
 * to back; request i carries image i mod images.length. Either `amount` requests or `duration` s.
 */
export async function scoreLoad(url: string, images: Buffer[], options: { connections: number; amount?: number; duration?: number }): Promise<LoadResult> {
  const bodies = images.map((im) => JSON.stringify({ images: [im.toString('base64')], texts: CAPTIONS }));
  let next = 0;
  const result = await autocannon({
    url,
    connections: options.connections,
    // autocannon refuses an explicit undefined
    ...(options.amount !== undefined ? { amount: options.amount } : { duration: options.duration ?? 10 }),
    timeout: 300,
    requests: [{
      method: 'POST',
      path: '/v1/score',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({ ...request, body: bodies[next++ % bodies.length] }),
    }],
  });
  const requests = result['2xx'] + result.non2xx;
  return {
    requests,
    seconds: result.duration,
    requests_per_s: requests / result.duration,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    errors: result.errors + result.timeouts,
    non_2xx: result.non2xx,
    statuses: Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, v]) => [code, v.count])),
  };
}

export interface EngineCounters {
  cacheHits: number;
  cacheMisses: number;
  visionRuns: number;
  visionImages: number;
  itmRuns: number;
  itmItems: number;
}

export async function engineCounters(url: string): Promise<EngineCounters> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return {
    cacheHits: metricValue(text, 'blip_engine_image_cache_lookups_total{result="hit"}'),
    cacheMisses: metricValue(text, 'blip_engine_image_cache_lookups_total{result="miss"}'),
    visionRuns: metricValue(text, 'blip_engine_batch_size_count{stage="vision"}'),
    visionImages: metricValue(text, 'blip_engine_batch_size_sum{stage="vision"}'),
    itmRuns: metricValue(text, 'blip_engine_batch_size_count{stage="itm"}'),
    itmItems: metricValue(text, 'blip_engine_batch_size_sum{stage="itm"}'),
  };
}

export function delta(after: EngineCounters, before: EngineCounters): EngineCounters {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as keyof EngineCounters]])) as unknown as EngineCounters;
}
