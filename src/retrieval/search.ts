import { stat } from 'node:fs/promises';
import { ImageError, UsageError } from '../errors.js';
import type { BlipForImageTextRetrieval, ForwardOptions } from '../model/blip-itm.js';
import { matchProbability } from '../tensor.js';
import type { ImageInput } from '../preprocessing/image-decode.js';
import { fsProblem } from './build-index.js';
import { ImageIndex, type NearestImage } from './image-index.js';
import { modelIdentity } from './model-identity.js';

export const DEFAULT_SEARCH_K = 10;
export const DEFAULT_SEARCH_RERANK = 64;

/** An indexed image left out of the results, and why. */
export interface SkippedImage {
  path: string;
  reason: string;
}

export interface TextSearchHit {
  /** 1-based rank in the results. */
  rank: number;
  path: string;
  /**
   * ITC cosine of the query and the image. With reranking it is computed from the image as it is on
   * disk now (re-encoded for ITM anyway); without, it is the stored feature's.
   */
  cosine: number;
  /** The cosine of the stored feature (what the ITC stage ranked by). */
  indexCosine: number;
  /** 1-based rank in the ITC stage. */
  itcRank: number;
  /** ITM logits [no match, match]; absent when not reranked. */
  itmLogits?: [number, number];
  /** Softmax of the logits, index 1. */
  itmProbability?: number;
  /** BLIP's retrieval score: ITM match logit + ITC cosine (absent when not reranked). */
  combined?: number;
}

export interface TextSearchResult {
  query: string;
  /** Images the ITC stage took from the index (before skipping vanished ones). */
  candidates: number;
  /** Whether ITM reranked the candidates. */
  reranked: boolean;
  hits: TextSearchHit[];
  skipped: SkippedImage[];
}

export interface TextSearchOptions extends Pick<ForwardOptions, 'itmTextStart'> {
  /** Results returned (default 10). */
  k?: number;
  /**
   * ITC candidates reranked by ITM (default 64; at least `k` are taken). 0: no ITM, results ranked
   * by the stored features' cosine alone.
   */
  rerank?: number;
  /** Candidate images decoded and encoded together for the rerank (default 16). */
  batchSize?: number;
  /** Called for each candidate skipped (vanished or unreadable) and for changed files. */
  onWarning?: (message: string) => void;
  onStatus?: (text: string) => void;
}

export interface ImageSearchHit {
  rank: number;
  path: string;
  /** Cosine of the stored feature and the query image's feature. */
  cosine: number;
}

export interface ImageSearchResult {
  query: string;
  hits: ImageSearchHit[];
  skipped: SkippedImage[];
}

export interface ImageSearchOptions {
  k?: number;
  onWarning?: (message: string) => void;
  onStatus?: (text: string) => void;
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new UsageError(`${name} must be an integer >= ${min}, got ${String(value)}`);
}

async function withIndex<T>(index: ImageIndex | string, fn: (index: ImageIndex) => Promise<T>): Promise<T> {
  if (typeof index !== 'string') return fn(index);
  const opened = await ImageIndex.open(index);
  try {
    return await fn(opened);
  } finally {
    opened.close();
  }
}

/**
 * Text-to-image search: the `rerank` stored images nearest to the query by ITC cosine, re-encoded
 * from disk and scored with ITM, then the top `k` by BLIP's retrieval score, ITM match logit + ITC
 * cosine (what BLIP's retrieval evaluation ranks its top-k_test candidates by). Candidates that
 * vanished or became unreadable since indexing are skipped with a warning.
 */
export async function searchByText(
  index: ImageIndex | string,
  model: BlipForImageTextRetrieval,
  query: string,
  options: TextSearchOptions = {},
): Promise<TextSearchResult> {
  const k = options.k ?? DEFAULT_SEARCH_K;
  const rerank = options.rerank ?? DEFAULT_SEARCH_RERANK;
  const batchSize = options.batchSize ?? 16;
  checkCount('k', k, 1);
  checkCount('rerank', rerank, 0);
  checkCount('batchSize', batchSize, 1);
  const warn = options.onWarning ?? (() => {});
  const status = options.onStatus ?? (() => {});
  return withIndex(index, async (idx) => {
    idx.assertModel(await modelIdentity(model));
    status('encoding the query ...');
    const tokens = model.processor.tokenize([query]);
    const text = await model.encodeTexts(tokens);
    const q = text.embeds.data;
    status('searching the index ...');
    const candidates = await idx.nearest(q, rerank > 0 ? Math.max(k, rerank) : k);
    const skipped: SkippedImage[] = [];
    const skip = (path: string, reason: string): void => {
      skipped.push({ path, reason });
      warn(`${path}: ${reason}; skipped (run blip-itm index again to update the index)`);
    };

    if (rerank === 0) {
      const hits: TextSearchHit[] = [];
      for (const [i, c] of candidates.entries()) {
        const state = await fileState(c);
        if (state.skip) skip(c.path, state.skip);
        else {
          if (state.note) warn(`${c.path}: ${state.note} (its stored feature was used; run blip-itm index again to update it)`);
          hits.push({ rank: hits.length + 1, path: c.path, cosine: c.cosine, indexCosine: c.cosine, itcRank: i + 1 });
        }
      }
      return { query, candidates: candidates.length, reranked: false, hits, skipped };
    }

    const scored: Array<Omit<TextSearchHit, 'rank'> & { combined: number }> = [];
    for (let start = 0; start < candidates.length; start += batchSize) {
      status(`reranking ${Math.min(start + batchSize, candidates.length)}/${candidates.length} ...`);
      const chunk = candidates.slice(start, start + batchSize).map((c, j) => ({ c, itcRank: start + j + 1 }));
      const ok: typeof chunk = [];
      const pixels: Float32Array[] = [];
      let dims: number[] = [];
      for (const entry of chunk) {
        const state = await fileState(entry.c);
        if (state.skip) {
          skip(entry.c.path, state.skip);
          continue;
        }
        try {
          const px = await model.processor.preprocessImages([entry.c.path]);
          pixels.push(px.data);
          dims = px.dims;
          ok.push(entry);
          if (state.note) warn(`${entry.c.path}: ${state.note}; scored from the file as it is now (run blip-itm index again to update the index)`);
        } catch (e) {
          if (!(e instanceof ImageError)) throw e;
          skip(entry.c.path, e.message.startsWith(`${entry.c.path}: `) ? e.message.slice(entry.c.path.length + 2) : e.message);
        }
      }
      if (ok.length === 0) continue;
      const per = pixels[0].length;
      const data = new Float32Array(ok.length * per);
      pixels.forEach((p, i) => data.set(p, i * per));
      const enc = await model.encodeImages({ data, dims: [ok.length, ...dims.slice(1)] });
      const logits = await model.itmPairs(enc, tokens, ok.map((_, i) => ({ image: i, text: 0 })), { itmTextStart: options.itmTextStart });
      const cos = model.cosine(enc, text);
      ok.forEach((entry, i) => {
        const l0 = logits.data[2 * i];
        const l1 = logits.data[2 * i + 1];
        const cosine = cos.data[i];
        scored.push({
          path: entry.c.path, cosine, indexCosine: entry.c.cosine, itcRank: entry.itcRank,
          itmLogits: [l0, l1], itmProbability: matchProbability(l0, l1), combined: l1 + cosine,
        });
      });
    }
    scored.sort((a, b) => b.combined - a.combined || a.itcRank - b.itcRank);
    const hits = scored.slice(0, k).map((h, i) => ({ rank: i + 1, ...h }));
    return { query, candidates: candidates.length, reranked: true, hits, skipped };
  });
}

/**
 * Image-to-image search: the `k` stored images nearest to `image` by ITC cosine (no ITM). An indexed
 * copy of the query image itself is among the results (cosine 1). Stored images whose file vanished
 * are skipped with a warning.
 */
export async function searchByImage(
  index: ImageIndex | string,
  model: BlipForImageTextRetrieval,
  image: ImageInput,
  options: ImageSearchOptions = {},
): Promise<ImageSearchResult> {
  const k = options.k ?? DEFAULT_SEARCH_K;
  checkCount('k', k, 1);
  const warn = options.onWarning ?? (() => {});
  const status = options.onStatus ?? (() => {});
  return withIndex(index, async (idx) => {
    idx.assertModel(await modelIdentity(model));
    status('encoding the query image ...');
    const enc = await model.encodeImages(await model.processor.preprocessImages([image]));
    status('searching the index ...');
    const skipped: SkippedImage[] = [];
    const hits: ImageSearchHit[] = [];
    const total = await idx.count();
    // Fetch more when stored images turn out to be gone, until k are found or the index is exhausted.
    let limit = k;
    let seen = 0;
    for (;;) {
      const found = await idx.nearest(enc.embeds.data, limit);
      for (const c of found.slice(seen)) {
        const state = await fileState(c);
        if (state.skip) {
          skipped.push({ path: c.path, reason: state.skip });
          warn(`${c.path}: ${state.skip}; skipped (run blip-itm index again to update the index)`);
        } else if (hits.length < k) {
          hits.push({ rank: hits.length + 1, path: c.path, cosine: c.cosine });
        }
      }
      seen = found.length;
      if (hits.length >= k || found.length < limit || limit >= total) break;
      limit = Math.min(total, limit * 2);
    }
    return { query: typeof image === 'string' ? image : '<image>', hits, skipped };
  });
}

/** `skip`: why the file cannot be used (gone, unreadable); `note`: it changed since it was indexed. */
async function fileState(c: NearestImage): Promise<{ skip?: string; note?: string }> {
  let st;
  try {
    st = await stat(c.path);
  } catch (e) {
    return { skip: fsProblem(e) };
  }
  if (!st.isFile()) return { skip: 'no longer a regular file' };
  if (st.size !== c.size || st.mtimeMs !== c.mtimeMs) return { note: 'changed since it was indexed' };
  return {};
}
