import { BlipError, ImageError, UsageError } from '../errors.js';
import { FileError, oneLine, readJsonFile, readRegularFile, resolveInside } from '../io/files.js';
import type { BlipForImageTextRetrieval, ImageEncodings } from '../model/blip-itm.js';
import type { Tensor } from '../tensor.js';
import { EncodingCache, MemoryTensorStore, sha256Hex, type TensorStore } from './encoding-cache.js';
import { PRE_CAPTION_MAX_WORDS, preCaption } from './pre-caption.js';
import { queryRank, type RecallFigures, recallFigures, type RetrievalRanks } from './recall.js';
import { TopKHeaps } from './top-k.js';

/**
 * The BLIP paper's image-text retrieval evaluation (salesforce/BLIP `train_retrieval.py`:
 * `evaluation()` and `itm_eval()`), on a Karpathy-format split (`coco_karpathy_test.json`,
 * `flickr30k_test.json`):
 *
 *  1. captions cleaned by `pre_caption` (max 30 words) and tokenised with padding to 35 tokens and
 *     truncation; `[ENC]` replaces the first id for ITM, the ITC features keep `[CLS]`;
 *  2. ITC similarity of every image with every text;
 *  3. for each image its top k texts, and for each text its top k images, by similarity, are
 *     rescored: score = ITM "match" logit (class 1, raw) + similarity; every other cell is -100;
 *  4. R@1/5/10 in both directions from `np.argsort` of each score row (see recall.ts).
 *
 * k = min(k_test, number of candidates) in each direction (the original code fails when k_test
 * exceeds the gallery; with COCO or Flickr30k this changes nothing).
 *
 * Memory stays flat over large galleries: the similarity matrix is not kept (rows are computed and
 * reduced to top-k on the fly) and each image's vision states are read from the store only while
 * its ITM group runs. One ITM group per image covers both directions (its k texts and every text
 * that has it among its k images), so the cross-attention keys/values run once per image and a
 * pair found in both directions is scored once.
 */

export const DEFAULT_K_TEST = 256;
export const EVAL_MAX_LENGTH = 35;
export const FILL_VALUE = -100;

/** A Karpathy-format split, flattened as the original `coco_karpathy_retrieval_eval` does. */
export interface KarpathySplit {
  /** Image paths as written in the annotation file. */
  images: string[];
  /** Raw captions, image by image. */
  captions: string[];
  /** Text indices of each image's captions. */
  img2txt: number[][];
  /** Image index of each caption. */
  txt2img: number[];
}

/** Parses `[{ "image": path, "caption": [strings] | string }, ...]`. */
export function karpathySplit(annotations: unknown, source = 'annotations'): KarpathySplit {
  if (!Array.isArray(annotations)) throw new BlipError(`${source}: expected a JSON list of {"image", "caption"} objects`);
  const split: KarpathySplit = { images: [], captions: [], img2txt: [], txt2img: [] };
  annotations.forEach((ann: unknown, i) => {
    const a = ann as { image?: unknown; caption?: unknown };
    if (typeof a !== 'object' || a === null || typeof a.image !== 'string' || a.image === '') {
      throw new BlipError(`${source}: entry ${i} has no "image" path`);
    }
    const captions = typeof a.caption === 'string' ? [a.caption] : a.caption;
    if (!Array.isArray(captions) || captions.length === 0 || !captions.every((c) => typeof c === 'string')) {
      throw new BlipError(`${source}: entry ${i} (${a.image}) needs "caption": a string or a non-empty list of strings`);
    }
    const ids: number[] = [];
    for (const c of captions as string[]) {
      ids.push(split.captions.length);
      split.captions.push(c);
      split.txt2img.push(i);
    }
    split.images.push(a.image);
    split.img2txt.push(ids);
  });
  if (split.images.length === 0) throw new BlipError(`${source}: the split has no images`);
  return split;
}

export async function readKarpathySplit(file: string): Promise<KarpathySplit> {
  return karpathySplit(await readJsonFile(file, { kind: 'annotations', what: 'an annotation file' }), oneLine(file));
}

export type EvalPhase = 'texts' | 'images' | 'similarity' | 'rerank' | 'ranking';

export interface EvalProgress {
  phase: EvalPhase;
  done: number;
  total: number;
  /** Items of this phase taken from the cache so far. */
  cached?: number;
}

export interface EvaluateOptions {
  /** Candidates rescored with ITM per query (default 256, as BLIP's COCO/Flickr configs). */
  kTest?: number;
  /** Folder the annotation's image paths are relative to. */
  imageRoot?: string;
  /** `pre_caption`'s word limit (default 30). */
  maxWords?: number;
  /** Token limit (default 35). */
  maxLength?: number;
  /** First ITM token: 'enc' (default, the original protocol) or 'cls' (transformers' forward). */
  itmTextStart?: 'cls' | 'enc';
  /** Where encodings are kept: an `EncodingCache` on disk makes reruns resume (default: memory). */
  store?: TensorStore;
  /** Identity of the model in the entry keys (see `modelCacheKey`); default: an `EncodingCache` store's own. */
  modelKey?: string;
  /** Keep the [images, texts] ITC matrix in the result (memory: 4 bytes per pair). */
  keepSimilarities?: boolean;
  /** Images per preprocessing + vision run when encoding (default 8). */
  imageBatchSize?: number;
  /** Texts per cache entry / text-encoder call group (default 256). */
  textChunkSize?: number;
  onProgress?: (p: EvalProgress) => void;
}

/** One direction's reranking, [queries, k] row-major. */
export interface RerankedTopK {
  k: number;
  /** Candidate indices of each query, by descending ITC similarity. */
  topkIdx: Int32Array;
  topkSim: Float32Array;
  /** ITM logit of class 1 of each (query, candidate) pair. */
  itmLogit1: Float32Array;
}

export interface EvaluationResult {
  recall: RecallFigures;
  ranks: RetrievalRanks;
  kTest: number;
  kEffective: { i2t: number; t2i: number };
  images: number;
  texts: number;
  /** Cleaned captions and their ids ([texts, maxLength]; ITM replaces column 0 by [ENC]). */
  cleanedCaptions: string[];
  inputIds: Tensor<BigInt64Array>;
  attentionMask: Tensor<BigInt64Array>;
  imageFeatures: Tensor;
  textFeatures: Tensor;
  /** [images, texts], only with `keepSimilarities`. */
  similarities?: Tensor;
  i2t: RerankedTopK;
  t2i: RerankedTopK;
  /** What this run computed (the rest came from the store). */
  work: { imagesEncoded: number; textsEncoded: number; itmGroupsRun: number; itmPairsRun: number; itmGroupsCached: number };
}

/** The dense score matrix of one direction: `itm_logit1 + sim` in the top-k cells, -100 elsewhere. */
export function scoreMatrix(r: RerankedTopK, queries: number, candidates: number): Float32Array {
  const out = new Float32Array(queries * candidates).fill(FILL_VALUE);
  for (let q = 0; q < queries; q++) scoreRow(r, q, candidates, out.subarray(q * candidates, (q + 1) * candidates));
  return out;
}

function scoreRow(r: RerankedTopK, q: number, candidates: number, out: Float32Array = new Float32Array(candidates)): Float32Array {
  out.fill(FILL_VALUE);
  for (let j = 0; j < r.k; j++) {
    const c = q * r.k + j;
    out[r.topkIdx[c]] = Math.fround(r.itmLogit1[c] + r.topkSim[c]);
  }
  return out;
}

/**
 * Runs the evaluation. Image files are read from `imageRoot` joined with the annotation paths.
 * With a disk store, every encoding is looked up before it is computed and written as soon as it
 * is, so an interrupted run picks up where it stopped.
 */
export async function evaluateRetrieval(model: BlipForImageTextRetrieval, split: KarpathySplit, options: EvaluateOptions = {}): Promise<EvaluationResult> {
  const kTest = options.kTest ?? DEFAULT_K_TEST;
  if (!Number.isInteger(kTest) || kTest < 1) throw new UsageError(`k_test must be a positive integer, got ${kTest}`);
  const maxWords = options.maxWords ?? PRE_CAPTION_MAX_WORDS;
  const maxLength = options.maxLength ?? EVAL_MAX_LENGTH;
  const itmTextStart = options.itmTextStart ?? 'enc';
  const store = options.store ?? new MemoryTensorStore();
  const modelKey = options.modelKey ?? (store instanceof EncodingCache ? store.modelKey : 'in-memory');
  const imageBatch = options.imageBatchSize ?? 8;
  const textChunk = options.textChunkSize ?? 256;
  const progress = options.onProgress ?? (() => {});
  const I = split.images.length;
  const T = split.captions.length;
  const E = model.config.image_text_hidden_size;
  const work = { imagesEncoded: 0, textsEncoded: 0, itmGroupsRun: 0, itmPairsRun: 0, itmGroupsCached: 0 };

  // 1. Texts: clean-up, ids, ITC features (cached per chunk of ids).
  const cleanedCaptions = split.captions.map((c) => preCaption(c, maxWords));
  const { inputIds, attentionMask } = model.processor.tokenize(cleanedCaptions, { padding: 'max_length', truncation: true, maxLength });
  const L = inputIds.dims[1];
  const textFeatures = new Float32Array(T * E);
  let textsCached = 0;
  for (let start = 0; start < T; start += textChunk) {
    const end = Math.min(T, start + textChunk);
    const ids = { data: inputIds.data.subarray(start * L, end * L), dims: [end - start, L] };
    const mask = { data: attentionMask.data.subarray(start * L, end * L), dims: [end - start, L] };
    const key = sha256Hex(modelKey, 'text-features', ids.data, mask.data);
    let feats = (await store.get('text', key))?.embeds;
    if (feats === undefined || feats.data.length !== (end - start) * E) {
      feats = (await model.encodeTexts({ inputIds: ids, attentionMask: mask })).embeds;
      await store.put('text', key, { embeds: feats });
      work.textsEncoded += end - start;
    } else {
      textsCached += end - start;
    }
    textFeatures.set(feats.data, start * E);
    progress({ phase: 'texts', done: end, total: T, cached: textsCached });
  }

  // 2. Images: content keys, ITC features; vision states go to the store.
  const paths = await splitImagePaths(split, options.imageRoot ?? '.');
  const imageKeys: string[] = new Array(I);
  const imageFeatures = new Float32Array(I * E);
  const toEncode: number[] = [];
  let imagesCached = 0;
  for (let i = 0; i < I; i++) {
    imageKeys[i] = sha256Hex(modelKey, 'image', await readImageBytes(paths[i]));
    const embeds = (await store.get('image-embeds', imageKeys[i]))?.embeds;
    if (embeds !== undefined && embeds.data.length === E && (await store.has('image-states', imageKeys[i]))) {
      imageFeatures.set(embeds.data, i * E);
      imagesCached++;
    } else {
      toEncode.push(i);
    }
    if (i % 64 === 63 || i === I - 1) progress({ phase: 'images', done: imagesCached, total: I, cached: imagesCached });
  }
  for (let b = 0; b < toEncode.length; b += imageBatch) {
    const batch = toEncode.slice(b, b + imageBatch);
    const enc = await encodeAndStore(model, store, batch.map((i) => paths[i]), batch.map((i) => imageKeys[i]));
    work.imagesEncoded += batch.length;
    batch.forEach((i, r) => imageFeatures.set(enc.embeds.data.subarray(r * E, (r + 1) * E), i * E));
    progress({ phase: 'images', done: imagesCached + b + batch.length, total: I, cached: imagesCached });
  }

  // 3. ITC similarities, reduced to top-k per image (row) and per text (column) on the fly.
  const kI = Math.min(kTest, T);
  const kT = Math.min(kTest, I);
  const rowHeaps = new TopKHeaps(I, kI);
  const colHeaps = new TopKHeaps(T, kT);
  const similarities = options.keepSimilarities ? new Float32Array(I * T) : undefined;
  const row = new Float32Array(T);
  for (let i = 0; i < I; i++) {
    const a = i * E;
    for (let t = 0; t < T; t++) {
      const b = t * E;
      let s = 0;
      for (let e = 0; e < E; e++) s += imageFeatures[a + e] * textFeatures[b + e];
      row[t] = s;
      rowHeaps.offer(i, row[t], t);
      colHeaps.offer(t, row[t], i);
    }
    similarities?.set(row, i * T);
    if (i % 16 === 15 || i === I - 1) progress({ phase: 'similarity', done: i + 1, total: I });
  }
  const rowTop = rowHeaps.result();
  const colTop = colHeaps.result();
  const i2t: RerankedTopK = { k: kI, topkIdx: rowTop.indices, topkSim: rowTop.values, itmLogit1: new Float32Array(I * kI) };
  const t2i: RerankedTopK = { k: kT, topkIdx: colTop.indices, topkSim: colTop.values, itmLogit1: new Float32Array(T * kT) };

  // 4. ITM, one group per image: its k texts, and every text that has it among its k images.
  const byImage = invert(t2i.topkIdx, T, kT, I);
  const slotOfText = new Int32Array(T).fill(-1);
  const encId = BigInt(model.processor.tokenizer.encTokenId ?? 30523);
  let itmCached = 0;
  for (let i = 0; i < I; i++) {
    const texts: number[] = [];
    const want = (t: number) => {
      if (slotOfText[t] < 0) {
        slotOfText[t] = texts.length;
        texts.push(t);
      }
    };
    for (let j = 0; j < kI; j++) want(i2t.topkIdx[i * kI + j]);
    for (let p = byImage.offsets[i]; p < byImage.offsets[i + 1]; p++) want(byImage.queries[p]);
    const n = texts.length;
    const ids = new BigInt64Array(n * L);
    const mask = new BigInt64Array(n * L);
    texts.forEach((t, r) => {
      ids.set(inputIds.data.subarray(t * L, (t + 1) * L), r * L);
      mask.set(attentionMask.data.subarray(t * L, (t + 1) * L), r * L);
    });
    const key = sha256Hex(modelKey, 'itm', itmTextStart, String(encId), imageKeys[i], ids, mask);
    let logits = (await store.get('itm', key))?.logits;
    if (logits === undefined || logits.data.length !== 2 * n) {
      const enc = await imageEncodingFor(model, store, paths[i], imageKeys[i], work);
      logits = await model.itmPairs(enc, { inputIds: { data: ids, dims: [n, L] }, attentionMask: { data: mask, dims: [n, L] } },
        texts.map((_, r) => ({ image: 0, text: r })), { itmTextStart });
      await store.put('itm', key, { logits });
      work.itmGroupsRun++;
      work.itmPairsRun += n;
    } else {
      itmCached++;
      work.itmGroupsCached++;
    }
    for (let j = 0; j < kI; j++) i2t.itmLogit1[i * kI + j] = logits.data[2 * slotOfText[i2t.topkIdx[i * kI + j]] + 1];
    for (let p = byImage.offsets[i]; p < byImage.offsets[i + 1]; p++) {
      t2i.itmLogit1[byImage.slots[p]] = logits.data[2 * slotOfText[byImage.queries[p]] + 1];
    }
    for (const t of texts) slotOfText[t] = -1;
    progress({ phase: 'rerank', done: i + 1, total: I, cached: itmCached });
  }

  // 5. Ranks and recall.
  const ranks: RetrievalRanks = { i2t: [], t2i: [] };
  const scoresI = new Float32Array(T);
  for (let i = 0; i < I; i++) ranks.i2t.push(queryRank(scoreRow(i2t, i, T, scoresI), split.img2txt[i]));
  const scoresT = new Float32Array(I);
  for (let t = 0; t < T; t++) {
    ranks.t2i.push(queryRank(scoreRow(t2i, t, I, scoresT), [split.txt2img[t]]));
    if (t % 1024 === 1023 || t === T - 1) progress({ phase: 'ranking', done: t + 1, total: T });
  }

  return {
    recall: recallFigures(ranks),
    ranks,
    kTest,
    kEffective: { i2t: kI, t2i: kT },
    images: I,
    texts: T,
    cleanedCaptions,
    inputIds,
    attentionMask,
    imageFeatures: { data: imageFeatures, dims: [I, E] },
    textFeatures: { data: textFeatures, dims: [T, E] },
    ...(similarities ? { similarities: { data: similarities, dims: [I, T] } } : {}),
    i2t,
    t2i,
    work,
  };
}

async function readImageBytes(path: string): Promise<Buffer> {
  try {
    return await readRegularFile(path, { kind: 'image', what: 'an image file' });
  } catch (e) {
    if (e instanceof FileError) throw new ImageError(oneLine(path), e.problem, { cause: e });
    throw e;
  }
}

/**
 * The image files of a split under `root`: every path must stay inside it (no `..`, no absolute
 * path, no link pointing out), as an annotation file is data, not a licence to read any file.
 */
export async function splitImagePaths(split: KarpathySplit, root: string): Promise<string[]> {
  const out: string[] = [];
  for (const [i, image] of split.images.entries()) {
    try {
      out.push(await resolveInside(root, image, 'image path'));
    } catch (e) {
      if (e instanceof FileError) throw new BlipError(`annotation entry ${i}: ${e.message}`, { subject: image, cause: e });
      throw e;
    }
  }
  return out;
}

/** Preprocesses and encodes images, storing each one's states and features. */
async function encodeAndStore(model: BlipForImageTextRetrieval, store: TensorStore, paths: string[], keys: string[]): Promise<ImageEncodings> {
  const enc = await model.encodeImages(await model.processor.preprocessImages(paths));
  const [, tokens, hidden] = enc.states.dims;
  const E = enc.embeds.dims[1];
  for (let r = 0; r < paths.length; r++) {
    // States first: an image counts as cached once its (small) features entry exists.
    await store.put('image-states', keys[r], { states: { data: enc.states.data.slice(r * tokens * hidden, (r + 1) * tokens * hidden), dims: [1, tokens, hidden] } });
    await store.put('image-embeds', keys[r], { embeds: { data: enc.embeds.data.slice(r * E, (r + 1) * E), dims: [1, E] } });
  }
  return enc;
}

/** One image's encoding for ITM, from the store, or encoded again when its entry is gone or damaged. */
async function imageEncodingFor(
  model: BlipForImageTextRetrieval,
  store: TensorStore,
  path: string,
  key: string,
  work: { imagesEncoded: number },
): Promise<ImageEncodings> {
  const v = model.config.vision_config;
  const states = (await store.get('image-states', key))?.states;
  const embeds = (await store.get('image-embeds', key))?.embeds;
  if (states !== undefined && embeds !== undefined && states.dims[2] === v.hidden_size && states.data.length === states.dims[1] * v.hidden_size) {
    return { count: 1, states, embeds, crossKV: [undefined] };
  }
  work.imagesEncoded++;
  return encodeAndStore(model, store, [path], [key]);
}

/** For each candidate c, the (query, slot) cells of a [queries, k] index matrix that hold c. */
function invert(idx: Int32Array, queries: number, k: number, candidates: number): { offsets: Int32Array; queries: Int32Array; slots: Int32Array } {
  const offsets = new Int32Array(candidates + 1);
  for (let c = 0; c < idx.length; c++) offsets[idx[c] + 1]++;
  for (let c = 0; c < candidates; c++) offsets[c + 1] += offsets[c];
  const fill = offsets.slice(0, candidates);
  const qs = new Int32Array(idx.length);
  const slots = new Int32Array(idx.length);
  for (let q = 0; q < queries; q++) {
    for (let j = 0; j < k; j++) {
      const cell = q * k + j;
      const p = fill[idx[cell]]++;
      qs[p] = q;
      slots[p] = cell;
    }
  }
  return { offsets, queries: qs, slots };
}
