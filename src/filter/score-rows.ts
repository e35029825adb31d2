import type { Engine, ImageSource, PairOutcome, PairRequest } from '../engine/types.js';
import type { RowPair } from './pairs.js';

/** Most pairs per engine job: small enough that several jobs overlap, large enough to batch well. */
export const PAIRS_PER_JOB = 32;
/** Most distinct images per engine job, so that one caption per image still makes several jobs. */
export const IMAGES_PER_JOB = 8;
/**
 * The bounded prefetch per unit that keeps the engine busy and memory flat. Image preparation
 * has latency (a worker thread reads, decodes and resizes), so enough images must be queued ahead
 * of the model for it never to wait, but not many more: a prepared image of the large model is
 * 1.7 MB of pixels until the vision encoder takes it.
 */
export const JOBS_IN_FLIGHT = 8;
export const IMAGES_IN_FLIGHT = 24;
/** A job takes about ten seconds on a slow CPU with the large model; it is never timed out. */
const JOB_DEADLINE_MS = 24 * 3600 * 1000;

/** The same path, or the same bytes object, is the same image (the engine dedupes by content too). */
function imageKey(image: ImageSource): unknown {
  return 'path' in image ? image.path : image.bytes;
}

/**
 * Scores rows through the engine, in order: rows come from an async iterable (a table range or a
 * streamed shard) and are sent in jobs of at most PAIRS_PER_JOB pairs and IMAGES_PER_JOB images,
 * with at most JOBS_IN_FLIGHT jobs and IMAGES_IN_FLIGHT images outstanding, so reading and decoding
 * overlap inference while memory holds a bounded number of images. A row that cannot be scored
 * keeps its own error; a bad image fails only its pairs (the engine's contract). `extract` pulls
 * the pair out of a row (and may drop its image bytes once handed over).
 */
export async function scoreRows<R>(
  engine: Engine,
  rows: AsyncIterable<R>,
  extract: (row: R) => RowPair,
  onProgress?: (outcomes: PairOutcome[]) => void,
  signal?: AbortSignal,
): Promise<{ rows: R[]; outcomes: PairOutcome[] }> {
  const all: R[] = [];
  const outcomes: PairOutcome[] = [];
  const inFlight = new Set<Promise<void>>();
  let imagesInFlight = 0;
  let failure: unknown;
  let batch: { at: number; pair: PairRequest }[] = [];
  let batchImages = new Set<unknown>();

  const flush = () => {
    const jobPairs = batch;
    const images = batchImages.size;
    batch = [];
    batchImages = new Set();
    imagesInFlight += images;
    const job = (async () => {
      const result = await engine.scorePairs(jobPairs.map((p) => p.pair), { deadlineMs: JOB_DEADLINE_MS, signal });
      jobPairs.forEach((p, i) => { outcomes[p.at] = result[i]; });
      onProgress?.(result);
    })().catch((e) => { failure ??= e; });
    inFlight.add(job);
    void job.finally(() => {
      inFlight.delete(job);
      imagesInFlight -= images;
    });
  };

  for await (const row of rows) {
    if (failure) break;
    const at = all.length;
    all.push(row);
    const pair = extract(row);
    if (!pair.ok) {
      outcomes[at] = pair;
      onProgress?.([pair]);
      continue;
    }
    const key = imageKey(pair.image);
    if (!batchImages.has(key) && batchImages.size >= IMAGES_PER_JOB) flush();
    batch.push({ at, pair: { image: pair.image, text: pair.text } });
    batchImages.add(key);
    if (batch.length >= PAIRS_PER_JOB) flush();
    while (inFlight.size >= JOBS_IN_FLIGHT || imagesInFlight >= IMAGES_IN_FLIGHT) await Promise.race(inFlight);
  }
  if (batch.length > 0 && !failure) flush();
  while (inFlight.size > 0) await Promise.race(inFlight);
  if (failure) throw failure;
  return { rows: all, outcomes };
}
