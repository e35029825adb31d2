import type { Engine, EngineStats, ImageSource, JobOptions, PairOutcome, RankResult, ScoreResult } from '../../src/engine/types.js';
import { JobCancelledError } from '../../src/engine/types.js';

/**
 * A TEST DOUBLE of the scoring engine, for the service's own error paths (auth, limits, schemas,
 * error mapping, cancellation) without a model. Its numbers are meaningless; tests of results
 * use the real ScoringEngine. `fail` makes every job throw; `hold` keeps jobs pending until
 * released or aborted.
 */
export class EngineDouble implements Engine {
  calls: Array<{ method: string; images: number; texts: number; options?: JobOptions }> = [];
  fail: Error | undefined;
  hold = false;
  private waiting: Array<() => void> = [];
  aborted = 0;

  get stats(): EngineStats {
    return { queueDepth: this.waiting.length, cacheEntries: 0, cacheBytes: 0, cacheHits: 0, cacheMisses: 0 };
  }

  release(): void {
    for (const w of this.waiting.splice(0)) w();
  }

  private async job(method: string, images: ImageSource[], texts: string[], options?: JobOptions): Promise<void> {
    this.calls.push({ method, images: images.length, texts: texts.length, options });
    if (this.fail) throw this.fail;
    if (!this.hold) return;
    await new Promise<void>((resolve, reject) => {
      this.waiting.push(resolve);
      options?.signal?.addEventListener('abort', () => {
        this.aborted++;
        reject(new JobCancelledError());
      });
    });
  }

  async score(request: { images: ImageSource[]; texts: string[] }, options?: JobOptions): Promise<ScoreResult> {
    await this.job('score', request.images, request.texts, options);
    return { pairs: request.images.flatMap((_, image) => request.texts.map((_t, text) => ({ image, text, itmLogits: [0, 0] as [number, number], itmProbability: 0.5, cosine: 0 }))) };
  }

  async rank(request: { image: ImageSource; texts: string[]; topN?: number }, options?: JobOptions): Promise<RankResult> {
    await this.job('rank', [request.image], request.texts, options);
    return { results: request.texts.slice(0, request.topN).map((text, index) => ({ index, text, itmLogits: [0, 0], itmProbability: 0.5, cosine: 0 })) };
  }

  async embedImages(images: ImageSource[], options?: JobOptions): Promise<Float32Array[]> {
    await this.job('embedImages', images, [], options);
    return images.map(() => new Float32Array([1, 0]));
  }

  async embedTexts(texts: string[], options?: JobOptions): Promise<Float32Array[]> {
    await this.job('embedTexts', [], texts, options);
    return texts.map(() => new Float32Array([0, 1]));
  }

  async scorePairs(): Promise<PairOutcome[]> {
    throw new Error('not used by the service');
  }

  async close(): Promise<void> {}
}
