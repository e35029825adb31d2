import { ImageError, ImageTooLargeError } from '../errors.js';
import { EncodingLru, type ImageEncoding } from './image-cache.js';
import type { Job } from './jobs.js';
import type { Submit } from './model-lane.js';
import type { PreparePool } from './prepare-pool.js';
import type { VisionOutput } from './stages.js';
import { JobCancelledError, type ImageSource } from './types.js';

interface InFlight {
  /** Jobs waiting for this encoding; the work is dropped only when all of them have settled. */
  waiters: Set<Job>;
  promise: Promise<ImageEncoding>;
}

/**
 * An image source to its encoding: read and hash on a worker, then the cache, then an encoding
 * already under way for the same bytes (in-flight dedupe), and only then decode (worker) and
 * the vision encoder (model lane).
 */
export class ImageEncoder {
  readonly cache: EncodingLru;
  hits = 0;
  misses = 0;
  private readonly inFlight = new Map<string, InFlight>();

  constructor(
    private readonly prepare: PreparePool,
    private readonly vision: Submit<Float32Array, VisionOutput>,
    cacheBytes: number,
    private readonly maxPixels: number | undefined,
    private readonly onCache?: (hit: boolean) => void,
  ) {
    this.cache = new EncodingLru(cacheBytes);
  }

  async encode(source: ImageSource, label: string, job: Job): Promise<ImageEncoding> {
    const { key, bytes } = await this.prepare.digest(source, label, () => job.live);
    for (;;) {
      const cached = this.cache.get(key);
      if (cached) return this.counted(true, cached);
      const pending = this.inFlight.get(key);
      if (!pending) return this.counted(false, this.start(key, bytes, label, job));
      pending.waiters.add(job);
      this.counted(true, undefined);
      try {
        return await pending.promise;
      } catch (e) {
        // Dropped because every job then waiting had gone, just before this one joined: retry.
        if (e instanceof JobCancelledError && job.live) continue;
        // Another caller's failure on the same bytes, told in this caller's own words.
        throw relabel(e, label);
      }
    }
  }

  private start(key: string, bytes: Uint8Array, label: string, job: Job): Promise<ImageEncoding> {
    const waiters = new Set([job]);
    const wanted = (): boolean => [...waiters].some((j) => j.live);
    const promise = (async () => {
      try {
        const { pixels } = await this.prepare.decode(bytes, label, this.maxPixels, wanted);
        let priority = Infinity;
        for (const j of waiters) if (j.live) priority = Math.min(priority, j.submittedAt);
        const out = await this.vision(pixels, priority, wanted);
        const encoding: ImageEncoding = { key, states: out.states, embeds: out.embeds };
        this.cache.set(encoding);
        return encoding;
      } finally {
        this.inFlight.delete(key);
      }
    })();
    this.inFlight.set(key, { waiters, promise });
    // Joiners attach their own handlers; this one keeps a failure nobody awaits from going unhandled.
    promise.catch(() => undefined);
    return promise;
  }

  private counted<T>(hit: boolean, value: T): T {
    if (hit) this.hits++;
    else this.misses++;
    this.onCache?.(hit);
    return value;
  }
}

function relabel(e: unknown, label: string): unknown {
  if (!(e instanceof ImageError) || e.subject === undefined) return e;
  const problem = e.message.startsWith(`${e.subject}: `) ? e.message.slice(e.subject.length + 2) : e.message;
  return e instanceof ImageTooLargeError ? new ImageTooLargeError(label, problem) : new ImageError(label, problem);
}
