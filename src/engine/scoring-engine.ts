import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { ImageError, UsageError } from '../errors.js';
import type { BlipForImageTextRetrieval, FromPretrainedOptions } from '../model/blip-itm.js';
import { inProcessBackend, type ModelBackend } from './backend.js';
import { matchProbability } from '../tensor.js';
import type { ImageEncoding } from './image-cache.js';
import { ImageEncoder } from './image-encoder.js';
import { type Job, JobTracker } from './jobs.js';
import { ModelHost } from './model-host.js';
import { ModelLane, type Submit } from './model-lane.js';
import { PreparePool } from './prepare-pool.js';
import type { ItmInput } from './stages.js';
import type {
  Engine, EngineEvents, EngineOptions, EngineStats, ImageSource, JobOptions, PairOutcome, PairRequest, PairScore,
  RankRequest, RankResult, RankedText, ScoreRequest, ScoreResult,
} from './types.js';
import { checkImages, checkTexts, imageLabel, imageSourceProblem, type ResolvedOptions, resolveOptions, textProblem } from './validate.js';

/**
 * The one place where concurrent work meets the model (issue #10): jobs from many callers are
 * admitted (bounded queue, deadline, cancellation), their images prepared on worker threads and
 * encoded once per distinct content (cache + in-flight dedupe), and their vision, text and ITM
 * work coalesced into batches on a single model lane.
 *
 *   const model = await BlipForImageTextRetrieval.fromPretrained('Salesforce/blip-itm-large-coco');
 *   const engine = new ScoringEngine(model, { maxBatch: 16 });
 *   const { pairs } = await engine.score({ images: [{ path: 'cat.jpg' }], texts: ['a cat'] });
 *   await engine.close();   // the model stays loaded
 *
 * With a model of the caller's, onnxruntime runs on this thread and holds its event loop for the
 * length of each run. A service should use `ScoringEngine.fromPretrained`, which loads the model
 * on a worker thread of its own (and releases it on close()).
 */
export class ScoringEngine implements Engine {
  private readonly options: ResolvedOptions;
  private readonly jobs: JobTracker;
  private readonly lane: ModelLane;
  private readonly pool: PreparePool;
  private readonly images: ImageEncoder;
  private readonly backend: ModelBackend;
  private readonly encodeText: Submit<number[], Float32Array>;
  private readonly itm: Submit<ItmInput, [number, number]>;
  private readonly maxTokens: number;
  private closing: Promise<void> | undefined;

  /**
   * @param model a loaded model (used on this thread, not disposed by close()) or a ModelHost
   *   (a model on its own thread; close() disposes it)
   */
  constructor(model: BlipForImageTextRetrieval | ModelHost, options: EngineOptions & { events?: EngineEvents } = {}) {
    this.options = resolveOptions(options, availableParallelism());
    const backend: ModelBackend = model instanceof ModelHost ? model : inProcessBackend(model);
    this.backend = backend;
    const events = guarded(options.events ?? {});
    this.jobs = new JobTracker(this.options.maxQueue, this.options.deadlineMs);
    this.lane = new ModelLane({ maxBatch: this.options.maxBatch, maxWaitMs: this.options.maxWaitMs, onBatch: events.batch });
    const vision = this.lane.stage('vision', (pixels: Float32Array[]) => backend.vision(pixels));
    this.encodeText = this.lane.stage('text', (ids: number[][]) => backend.text(ids));
    const start = this.options.itmTextStart;
    this.itm = this.lane.stage('itm', (pairs: ItmInput[]) => backend.itm(pairs, start), (pair) => pair.image.key);
    this.pool = new PreparePool(join(backend.dir, 'preprocessor_config.json'), this.options.prepareThreads, (s) => events.batch?.('prepare', 1, s));
    this.images = new ImageEncoder(this.pool, vision, this.options.cacheBytes, this.options.maxPixels, events.cache);
    // Truncated as `score` does, and never past what the position embeddings cover.
    this.maxTokens = Math.min(backend.processor.tokenizer.modelMaxLength, backend.config.text_config.max_position_embeddings);
  }

  /**
   * Loads the model on a worker thread of its own and returns an engine over it, so that no
   * model run ever blocks this thread's event loop. close() also releases the model.
   */
  static async fromPretrained(idOrPath: string, options: FromPretrainedOptions & EngineOptions & { events?: EngineEvents } = {}): Promise<ScoringEngine> {
    const host = await ModelHost.load(idOrPath, options);
    try {
      return new ScoringEngine(host, options);
    } catch (e) {
      await host.dispose();
      throw e;
    }
  }

  /** The checkpoint folder the model was loaded from (the service offers its files to the page's browser mode). */
  get checkpointDir(): string {
    return this.backend.dir;
  }

  get stats(): EngineStats {
    return {
      queueDepth: this.jobs.depth,
      cacheEntries: this.images.cache.size,
      cacheBytes: this.images.cache.bytes,
      cacheHits: this.images.hits,
      cacheMisses: this.images.misses,
      visionRuns: this.backend.visionRuns,
    };
  }

  score(request: ScoreRequest, options?: JobOptions): Promise<ScoreResult> {
    return this.jobs.run(options, async (job) => {
      const images = checkImages(request?.images, 'images');
      const texts = checkTexts(request?.texts, 'texts');
      const ids = texts.map((t) => this.tokenize(t));
      const live = () => job.live;
      const encodings = this.encodeAll(images, job);
      const [textEmbeds, perImage] = await Promise.all([
        Promise.all(ids.map((row) => this.encodeText(row, job.submittedAt, live))),
        Promise.all(images.map(async (_, i) => {
          const enc = await encodings[i];
          return { enc, logits: await Promise.all(ids.map((row) => this.itm({ image: enc, ids: row }, job.submittedAt, live))) };
        })),
      ]);
      const pairs: PairScore[] = [];
      perImage.forEach(({ enc, logits }, image) => {
        logits.forEach((l, text) => pairs.push(pairScore(image, text, l, cosine(enc.embeds, textEmbeds[text]))));
      });
      return { pairs };
    });
  }

  async rank(request: RankRequest, options?: JobOptions): Promise<RankResult> {
    const topN = request?.topN;
    if (topN !== undefined && (!Number.isSafeInteger(topN) || topN < 1)) throw new UsageError(`topN must be a positive integer, got ${JSON.stringify(topN)}`);
    const problem = imageSourceProblem(request?.image);
    if (problem) throw new UsageError(`image: ${problem}`);
    const { pairs } = await this.score({ images: [request.image], texts: request.texts }, options);
    const results: RankedText[] = pairs.map((p) => ({
      index: p.text, text: request.texts[p.text], itmLogits: p.itmLogits, itmProbability: p.itmProbability, cosine: p.cosine,
    }));
    results.sort(compareRanked);
    return { results: topN === undefined ? results : results.slice(0, topN) };
  }

  embedImages(images: ImageSource[], options?: JobOptions): Promise<Float32Array[]> {
    return this.jobs.run(options, async (job) => {
      const checked = checkImages(images, 'images');
      return (await Promise.all(this.encodeAll(checked, job))).map((e) => e.embeds.slice());
    });
  }

  embedTexts(texts: string[], options?: JobOptions): Promise<Float32Array[]> {
    return this.jobs.run(options, async (job) => {
      const checked = checkTexts(texts, 'texts');
      return Promise.all(checked.map((t) => this.encodeText(this.tokenize(t), job.submittedAt, () => job.live)));
    });
  }

  scorePairs(pairs: PairRequest[], options?: JobOptions): Promise<PairOutcome[]> {
    return this.jobs.run(options, async (job) => {
      if (!Array.isArray(pairs)) throw new UsageError('scorePairs: pairs must be an array of {image, text}');
      const outcomes = new Array<PairOutcome>(pairs.length);
      const groups = groupPairs(pairs, outcomes);
      const texts = new Map<string, { ids: number[]; embeds: Promise<Float32Array> }>();
      const textOf = (text: string) => {
        let t = texts.get(text);
        if (!t) {
          const ids = this.tokenize(text);
          t = { ids, embeds: this.encodeText(ids, job.submittedAt, () => job.live) };
          t.embeds.catch(() => undefined);
          texts.set(text, t);
        }
        return t;
      };
      // A window of images in flight keeps memory flat for large inputs while still filling batches.
      await forEachLimited(groups, 2 * this.options.maxBatch, async (group) => {
        let enc: ImageEncoding;
        try {
          enc = await this.images.encode(group.source, group.label, job);
        } catch (e) {
          if (!(e instanceof ImageError)) throw e;
          for (const k of group.pairs) outcomes[k] = { ok: false, error: e.message };
          return;
        }
        await Promise.all(group.pairs.map(async (k) => {
          const t = textOf(pairs[k].text);
          const [logits, embeds] = await Promise.all([this.itm({ image: enc, ids: t.ids }, job.submittedAt, () => job.live), t.embeds]);
          const s = pairScore(0, 0, logits, cosine(enc.embeds, embeds));
          outcomes[k] = { ok: true, itmLogits: s.itmLogits, itmProbability: s.itmProbability, cosine: s.cosine };
        }));
      });
      return outcomes;
    });
  }

  /** Stops taking jobs, lets the accepted ones finish, then stops the worker threads. The model stays loaded. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.jobs.close();
      await this.jobs.drain();
      await this.lane.idle();
      await this.pool.destroy();
      if (this.backend instanceof ModelHost) await this.backend.dispose();
    })();
    return this.closing;
  }

  private tokenize(text: string): number[] {
    return this.backend.processor.tokenizer.encode(text, { truncation: true, maxLength: this.maxTokens }).inputIds;
  }

  /** One encoding per distinct source of the job (the same path or the same bytes object once). */
  private encodeAll(images: ImageSource[], job: Job): Array<Promise<ImageEncoding>> {
    const seen = new Map<unknown, Promise<ImageEncoding>>();
    return images.map((source, i) => {
      const identity = 'path' in source ? `path:${source.path}` : source.bytes;
      let p = seen.get(identity);
      if (!p) {
        p = this.images.encode(source, imageLabel(source, `images[${i}]`), job);
        p.catch(() => undefined);
        seen.set(identity, p);
      }
      return p;
    });
  }
}

/** Observers must not break the engine: a throwing hook would leave a batch's callers waiting forever. */
function guarded(events: EngineEvents): EngineEvents {
  const call = <A extends unknown[]>(hook: ((...args: A) => void) | undefined) => hook && ((...args: A) => {
    try {
      hook(...args);
    } catch (e) {
      process.emitWarning(`a ScoringEngine event hook threw: ${(e as Error)?.message ?? String(e)}`);
    }
  });
  return { batch: call(events.batch), cache: call(events.cache) };
}

interface PairGroup {
  source: ImageSource;
  label: string;
  pairs: number[];
}

/** Groups valid pairs by image source; invalid ones get their outcome at once. */
function groupPairs(pairs: PairRequest[], outcomes: PairOutcome[]): PairGroup[] {
  const groups = new Map<unknown, PairGroup>();
  pairs.forEach((pair, k) => {
    if (pair === null || typeof pair !== 'object') {
      outcomes[k] = { ok: false, error: `pairs[${k}] must be {image, text}` };
      return;
    }
    const imageProblem = imageSourceProblem(pair.image);
    if (imageProblem) {
      outcomes[k] = { ok: false, error: `pairs[${k}].image: ${imageProblem}` };
      return;
    }
    const tp = textProblem(pair.text);
    if (tp) {
      outcomes[k] = { ok: false, error: `pairs[${k}].text ${tp}` };
      return;
    }
    const source = pair.image;
    const identity = 'path' in source ? `path:${source.path}` : source.bytes;
    const group = groups.get(identity);
    if (group) group.pairs.push(k);
    else groups.set(identity, { source, label: imageLabel(source, `pairs[${k}].image`), pairs: [k] });
  });
  return [...groups.values()];
}

/** Runs `fn` over `items` with at most `limit` running; the first failure rejects (the rest still settle). */
async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** The dot product of two normalised feature vectors, summed as BlipForImageTextRetrieval.cosine does. */
function cosine(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return Math.fround(s);
}

function pairScore(image: number, text: number, logits: [number, number], cos: number): PairScore {
  return { image, text, itmLogits: [logits[0], logits[1]], itmProbability: matchProbability(logits[0], logits[1]), cosine: cos };
}

/** Best first by ITM (logit difference l1 - l0), ties by higher cosine, then lower index (as `blip-itm rank`). */
function compareRanked(a: RankedText, b: RankedText): number {
  const da = a.itmLogits[1] - a.itmLogits[0];
  const db = b.itmLogits[1] - b.itmLogits[0];
  if (da !== db) return db - da;
  if (a.cosine !== b.cosine) return b.cosine - a.cosine;
  return a.index - b.index;
}
