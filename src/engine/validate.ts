import { UsageError } from '../errors.js';
import { oneLine } from '../io/files.js';
import type { EngineOptions, ImageSource } from './types.js';

/**
 * Checks of what callers hand the engine, with one-line messages naming the field. The service
 * and the filter validate their own inputs first; these guard the library API itself.
 */

/** Why `source` is not an ImageSource, or undefined when it is one. */
export function imageSourceProblem(source: unknown): string | undefined {
  if (source === null || typeof source !== 'object') return `expected {bytes} or {path}, got ${source === null ? 'null' : typeof source}`;
  const s = source as Record<string, unknown>;
  if ('bytes' in s) {
    // Empty bytes are the decoder's to refuse: an ImageError, like any other unusable image.
    if (!(s.bytes instanceof Uint8Array)) return 'bytes must be a Uint8Array (or Buffer)';
  } else if ('path' in s) {
    if (typeof s.path !== 'string' || s.path === '') return 'path must be a non-empty string';
  } else {
    return 'expected {bytes} or {path}';
  }
  if (s.label !== undefined && typeof s.label !== 'string') return 'label must be a string';
  return undefined;
}

/** How an image is named in errors: its label, else its path, else its place in the request. */
export function imageLabel(source: ImageSource, fallback: string): string {
  if (source.label !== undefined) return oneLine(source.label);
  return 'path' in source ? oneLine(source.path) : fallback;
}

export function checkImages(images: unknown, field: string): ImageSource[] {
  if (!Array.isArray(images) || images.length === 0) throw new UsageError(`${field} must be a non-empty array of images`);
  images.forEach((s, i) => {
    const problem = imageSourceProblem(s);
    if (problem) throw new UsageError(`${field}[${i}]: ${problem}`);
  });
  return images as ImageSource[];
}

/** Why `text` cannot be scored, or undefined. */
export function textProblem(text: unknown): string | undefined {
  if (typeof text !== 'string') return `must be a string, got ${text === null ? 'null' : typeof text}`;
  if (text.trim() === '') return 'is empty';
  return undefined;
}

export function checkTexts(texts: unknown, field: string): string[] {
  if (!Array.isArray(texts) || texts.length === 0) throw new UsageError(`${field} must be a non-empty array of strings`);
  texts.forEach((t, i) => {
    const problem = textProblem(t);
    if (problem) throw new UsageError(`${field}[${i}] ${problem}`);
  });
  return texts as string[];
}

export interface ResolvedOptions {
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  cacheBytes: number;
  deadlineMs: number;
  itmTextStart: 'cls' | 'enc';
  prepareThreads: number;
  maxPixels: number | undefined;
}

export function resolveOptions(o: EngineOptions, cpus: number): ResolvedOptions {
  const int = (name: keyof EngineOptions, value: unknown, min: number, dflt: number): number => {
    if (value === undefined) return dflt;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw new UsageError(`engine option ${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const num = (name: keyof EngineOptions, value: unknown, min: number, dflt: number, exclusive = false): number => {
    if (value === undefined) return dflt;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || (exclusive && value === min)) {
      throw new UsageError(`engine option ${name} must be a number ${exclusive ? '>' : '>='} ${min}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  if (o.itmTextStart !== undefined && o.itmTextStart !== 'cls' && o.itmTextStart !== 'enc') {
    throw new UsageError(`engine option itmTextStart must be "cls" or "enc", got ${JSON.stringify(o.itmTextStart)}`);
  }
  return {
    maxBatch: int('maxBatch', o.maxBatch, 1, 16),
    maxWaitMs: num('maxWaitMs', o.maxWaitMs, 0, 5),
    maxQueue: int('maxQueue', o.maxQueue, 1, 256),
    cacheBytes: num('cacheBytes', o.cacheBytes, 0, 512 * 2 ** 20),
    deadlineMs: num('deadlineMs', o.deadlineMs, 0, 60_000, true),
    itmTextStart: o.itmTextStart ?? 'cls',
    prepareThreads: int('prepareThreads', o.prepareThreads, 1, Math.max(1, Math.min(4, cpus))),
    maxPixels: o.maxPixels === undefined ? undefined : num('maxPixels', o.maxPixels, 0, 0, true),
  };
}
