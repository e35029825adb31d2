import { BlipError } from '../errors.js';

/**
 * The scoring engine's contract: what the service (src/server) and the dataset filter
 * (src/filter) may rely on. The implementation lives beside this file (scoring-engine.ts);
 * neither caller talks to onnxruntime or the model directly.
 */

/** An image as a caller hands it over: encoded file bytes, or a path the engine reads. */
export type ImageSource =
  | { bytes: Uint8Array; label?: string }
  | { path: string; label?: string };

export interface EngineOptions {
  /** Most items per model run: images per vision run, captions per text run, pairs per ITM run. Default 16. */
  maxBatch?: number;
  /** How long a batch waits for more work from other callers before it runs. Default 5 ms. */
  maxWaitMs?: number;
  /** Most jobs accepted but not finished; a job beyond it is refused at once with EngineOverloadedError. Default 256. */
  maxQueue?: number;
  /** Image-encoding LRU cache size in bytes, keyed by sha256 of the image bytes. Default 512 MiB; 0 disables. */
  cacheBytes?: number;
  /** Default deadline of a job, from its submission. Default 60,000 ms. */
  deadlineMs?: number;
  /** First ITM token: 'cls' (default, transformers) or 'enc' (original BLIP). */
  itmTextStart?: 'cls' | 'enc';
  /** Worker threads that decode and preprocess images. Default min(4, available CPUs). */
  prepareThreads?: number;
  /** Decoder pixel limit per image (default: the decoder's, PIL's 89,478,485). */
  maxPixels?: number;
}

export interface JobOptions {
  /** Aborting drops the job's work that has not started and rejects with JobCancelledError. */
  signal?: AbortSignal;
  /** Overrides EngineOptions.deadlineMs for this job. */
  deadlineMs?: number;
}

export interface PairScore {
  /** Index into the job's images. */
  image: number;
  /** Index into the job's texts. */
  text: number;
  itmLogits: [number, number];
  /** softmax(itmLogits)[1]. */
  itmProbability: number;
  cosine: number;
}

export interface ScoreRequest {
  images: ImageSource[];
  texts: string[];
}

/** Every image against every text, image-major (as `blip-itm score --json`). */
export interface ScoreResult {
  pairs: PairScore[];
}

export interface RankRequest {
  image: ImageSource;
  texts: string[];
  /** Return only the best N (default: all). */
  topN?: number;
}

export interface RankedText {
  /** Position in the request's texts. */
  index: number;
  text: string;
  itmLogits: [number, number];
  itmProbability: number;
  cosine: number;
}

/** Sorted best first by ITM (logit difference l1 - l0), ties by higher cosine, then lower index. */
export interface RankResult {
  results: RankedText[];
}

/** One (image, text) pair of a bulk job; pairs sharing an image (same bytes) encode it once. */
export interface PairRequest {
  image: ImageSource;
  text: string;
}

/** A bulk pair's outcome: its scores, or why it could not be scored (the rest still are). */
export type PairOutcome =
  | { ok: true; itmLogits: [number, number]; itmProbability: number; cosine: number }
  | { ok: false; error: string };

export type EngineStage = 'prepare' | 'vision' | 'text' | 'itm';

/** Observability hooks; the service feeds prom-client from these. */
export interface EngineEvents {
  /** A model run of `size` items finished in `seconds`. */
  batch?: (stage: EngineStage, size: number, seconds: number) => void;
  /** An image encoding was served from the cache (hit) or computed (miss). */
  cache?: (hit: boolean) => void;
}

export interface EngineStats {
  /** Jobs accepted and not yet finished. */
  queueDepth: number;
  cacheEntries: number;
  cacheBytes: number;
  cacheHits: number;
  cacheMisses: number;
  /** Vision encoder runs of the engine's model so far (also counts runs made outside the engine on a shared model). */
  visionRuns?: number;
}

/** The engine's public surface; `ScoringEngine` implements it. */
export interface Engine {
  score(request: ScoreRequest, options?: JobOptions): Promise<ScoreResult>;
  rank(request: RankRequest, options?: JobOptions): Promise<RankResult>;
  /** L2-normalised ITC image features, one per image. */
  embedImages(images: ImageSource[], options?: JobOptions): Promise<Float32Array[]>;
  /** L2-normalised ITC text features, one per text. */
  embedTexts(texts: string[], options?: JobOptions): Promise<Float32Array[]>;
  /** Bulk scoring for the filter: one outcome per pair, in order; a bad image or text fails only its pairs. */
  scorePairs(pairs: PairRequest[], options?: JobOptions): Promise<PairOutcome[]>;
  readonly stats: EngineStats;
  /** Stops taking jobs, finishes those in flight, stops the workers. Does not dispose the model. */
  close(): Promise<void>;
}

/** The queue is full: retry later (the service answers 503 with Retry-After). */
export class EngineOverloadedError extends BlipError {
  constructor(readonly maxQueue: number) {
    super(`the scoring engine is busy: ${maxQueue} jobs are already queued; retry later`);
    this.name = 'EngineOverloadedError';
  }
}

/** The job's deadline passed before it finished (the service answers 504). */
export class DeadlineExceededError extends BlipError {
  constructor(readonly deadlineMs: number) {
    super(`the job did not finish within its ${deadlineMs} ms deadline`);
    this.name = 'DeadlineExceededError';
  }
}

/** The caller aborted the job. */
export class JobCancelledError extends BlipError {
  constructor() {
    super('the job was cancelled');
    this.name = 'JobCancelledError';
  }
}

/** The engine was closed; no new jobs. */
export class EngineClosedError extends BlipError {
  constructor() {
    super('the scoring engine is closed');
    this.name = 'EngineClosedError';
  }
}
