import type { Engine, PairOutcome, PairRequest } from '../engine/types.js';
import type { RowPair } from './pairs.js';

/** Pairs per engine job: small enough that several jobs overlap, large enough to batch well. */
export const PAIRS_PER_JOB = 32;
/**
 * Engine jobs in flight per unit: the bounded prefetch that keeps the engine busy and memory flat.
 * Image preparation has latency (a worker thread reads, decodes and resizes), so enough images
 * must be queued ahead of the model for its lane never to wait: 8 × 32 pairs.
 */
export const JOBS_IN_FLIGHT = 8;
/** A job of 32 pairs takes about a minute on a slow CPU with the large model; never time it out. */
const JOB_DEADLINE_MS = 24 * 3600 * 1000;

export interface ScoringProgress {
  /** Pairs scored or failed since the last call. */
  pairs: number;
  kept: number;
  errors: number;
}

/**
 * Scores rows through the engine, in order: rows come from an async iterable (a table range or a
 * streamed shard) and are sent in jobs of PAIRS_PER_JOB, at most JOBS_IN_FLIGHT at once, so
 * reading and decoding overlap inference and at most ~128 images wait in memory. A row that
 * cannot be scored keeps its own error; a bad image fails only its pairs (the engine's contract).
 * `extract` pulls the pair out of a row (and may drop its image bytes once handed over).
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
  let failure: unknown;
  let batch: { at: number; pair: PairRequest }[] = [];

  const flush = () => {
    const jobPairs = batch;
    batch = [];
    const job = (async () => {
      const result = await engine.scorePairs(jobPairs.map((p) => p.pair), { deadlineMs: JOB_DEADLINE_MS, signal });
      jobPairs.forEach((p, i) => { outcomes[p.at] = result[i]; });
      onProgress?.(result);
    })().catch((e) => { failure ??= e; });
    inFlight.add(job);
    void job.finally(() => inFlight.delete(job));
  };

  for await (const row of rows) {
    if (failure) break;
    const at = all.length;
    all.push(row);
    const pair = extract(row);
    if (pair.ok) {
      batch.push({ at, pair: { image: pair.image, text: pair.text } });
      if (batch.length >= PAIRS_PER_JOB) {
        flush();
        while (inFlight.size >= JOBS_IN_FLIGHT) await Promise.race(inFlight);
      }
    } else {
      outcomes[at] = pair;
      onProgress?.([pair]);
    }
  }
  if (batch.length > 0 && !failure) flush();
  while (inFlight.size > 0) await Promise.race(inFlight);
  if (failure) throw failure;
  return { rows: all, outcomes };
}
