import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { BlipError, ImageError } from '../errors.js';
import { FileError, readRegularFile } from '../io/files.js';
import { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import type { Tensor } from '../tensor.js';
import { type CollectedImages, collectImages, inScope } from './collect-images.js';
import { DEFAULT_INDEX_DIR, ImageIndex, type IndexEntry, type StoredImage } from './image-index.js';
import { type LazyModel, type ModelIdentity, modelIdentity } from './model-identity.js';

export const DEFAULT_INDEX_BATCH_SIZE = 16;

export interface IndexProgress {
  /** Files read so far (encoded, reused or failed) of the `total` that were new or changed. */
  done: number;
  total: number;
  /** Images the vision encoder has run on so far. */
  encoded: number;
  failed: number;
  elapsedMs: number;
  /** Files per second so far. */
  rate: number;
  /** Estimated seconds left; undefined before the first batch is done. */
  etaSeconds?: number;
}

export interface FailedImage {
  path: string;
  error: string;
}

export interface IndexSummary {
  /** Absolute path of the index folder. */
  db: string;
  model: ModelIdentity;
  /** New files stored. */
  added: number;
  /** Stored files whose content changed, encoded again. */
  updated: number;
  /** Stored files that are gone (or no longer listed). */
  removed: number;
  /** Stored files left as they were (same size and mtime, or same sha256). */
  unchanged: number;
  /** Files that could not be read or decoded; the run went on without them. */
  failed: FailedImage[];
  /** Images the vision encoder ran on in this run (added + updated). */
  encoded: number;
  /** Images in the index after the run. */
  total: number;
  seconds: number;
}

export interface IndexImagesOptions {
  /** Index folder (LanceDB database); default `./blip-index`. */
  db?: string;
  /**
   * The model, or a {@link LazyModel} that is loaded only if some image needs encoding (and then
   * disposed before returning).
   */
  model: BlipForImageTextRetrieval | LazyModel;
  /** Images decoded, encoded and committed to the index together (default 16). */
  batchSize?: number;
  /** Start the index over (any model). */
  rebuild?: boolean;
  /** Called after every committed batch. */
  onProgress?: (progress: IndexProgress) => void;
  /** Phases before and after the batches ("reading the index", "loading the model", ...). */
  onStatus?: (text: string) => void;
}

interface Pending {
  path: string;
  size: number;
  mtimeMs: number;
  /** The stored row, when exactly one exists (its hash can spare the encoding). */
  prev?: IndexEntry;
  /** Whether the index holds any row for this path now. */
  stored: boolean;
}

interface Prepared {
  encode: Array<{ item: Pending; sha256: string; pixels: Tensor }>;
  reuse: Array<{ item: Pending; sha256: string }>;
  failed: Array<{ item: Pending; error: string }>;
}

/**
 * Brings the index at `options.db` up to date with `target` (a folder, a list file or an image; see
 * {@link collectImages}): new and changed images are encoded and stored, unchanged ones skipped,
 * vanished ones removed. Rows are committed every `batchSize` images, so an interrupted run loses at
 * most one batch and the next run picks up where it stopped. Images that cannot be read or decoded
 * are reported in `failed` and do not stop the run.
 */
export async function indexImages(target: string | CollectedImages, options: IndexImagesOptions): Promise<IndexSummary> {
  const started = performance.now();
  const status = options.onStatus ?? (() => {});
  const batchSize = options.batchSize ?? DEFAULT_INDEX_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new BlipError(`batchSize must be a positive integer, got ${String(batchSize)}`);

  if (typeof target === 'string') status('finding images ...');
  const collected = typeof target === 'string' ? await collectImages(target) : target;
  const given = options.model instanceof BlipForImageTextRetrieval ? options.model : undefined;
  const lazy = given ? undefined : (options.model as LazyModel);
  const identity = given ? await modelIdentity(given) : lazy!.identity;

  status('opening the index ...');
  const index = await ImageIndex.openForWriting(options.db ?? DEFAULT_INDEX_DIR, identity, { rebuild: options.rebuild });
  let loading: Promise<BlipForImageTextRetrieval> | undefined;
  const getModel = (): Promise<BlipForImageTextRetrieval> => {
    if (given) return Promise.resolve(given);
    loading ??= (status('loading the model ...'), lazy!.load());
    return loading;
  };
  const failed: FailedImage[] = [];
  let added = 0;
  let updated = 0;
  let unchanged = 0;
  let encoded = 0;
  let removed = 0;
  try {
    // What is stored. A path stored twice (only a foreign writer could do that) is encoded again and
    // ends up stored once.
    const stored = new Map<string, { entry: IndexEntry; copies: number }>();
    for (const entry of await index.entries()) {
      const s = stored.get(entry.path);
      if (s) s.copies++;
      else stored.set(entry.path, { entry, copies: 1 });
    }
    const found = new Set(collected.files);
    const gone = [...stored.keys()].filter((p) => !found.has(p) && inScope(collected.scope, p));
    if (gone.length > 0) {
      status(`removing ${gone.length} vanished image(s) ...`);
      await index.remove(gone);
      removed = gone.length;
    }

    status(`checking ${collected.files.length} file(s) ...`);
    const pending: Pending[] = [];
    const staleRows: string[] = [];
    const stats = await mapLimit(collected.files, 32, async (path) => {
      try {
        return { path, st: await stat(path) };
      } catch (e) {
        return { path, error: fsProblem(e) };
      }
    });
    for (const { path, st, error } of stats) {
      const prev = stored.get(path);
      if (!st || !st.isFile()) {
        failed.push({ path, error: error ?? 'not a regular file' });
        if (prev) staleRows.push(path);
        continue;
      }
      if (prev && prev.copies === 1 && prev.entry.size === st.size && prev.entry.mtimeMs === st.mtimeMs) {
        unchanged++;
        continue;
      }
      pending.push({ path, size: st.size, mtimeMs: st.mtimeMs, prev: prev?.copies === 1 ? prev.entry : undefined, stored: prev !== undefined });
    }
    if (staleRows.length > 0) await index.remove(staleRows);

    const prepare = async (batch: Pending[]): Promise<Prepared> => {
      const out: Prepared = { encode: [], reuse: [], failed: [] };
      for (const item of batch) {
        let bytes: Buffer;
        try {
          bytes = await readRegularFile(item.path, { kind: 'image', what: 'an image file' });
        } catch (e) {
          out.failed.push({ item, error: fsProblem(e) });
          continue;
        }
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        if (item.prev && item.prev.sha256 === sha256) {
          out.reuse.push({ item, sha256 });
          continue;
        }
        const model = await getModel();
        try {
          out.encode.push({ item, sha256, pixels: await model.processor.preprocessImages([bytes], { labels: [item.path] }) });
        } catch (e) {
          if (!(e instanceof ImageError)) throw e;
          out.failed.push({ item, error: e.message.startsWith(`${item.path}: `) ? e.message.slice(item.path.length + 2) : e.message });
        }
      }
      return out;
    };

    const batches: Pending[][] = [];
    for (let i = 0; i < pending.length; i += batchSize) batches.push(pending.slice(i, i + batchSize));
    // New files certainly need the model: load it before the clock of the images/s figure starts.
    // (Changed files may turn out identical by hash and need no model at all.)
    if (pending.some((p) => !p.stored)) await getModel();
    const loopStart = performance.now();
    let done = 0;
    // Decoding the next batch overlaps with encoding and storing this one.
    let next: Promise<Prepared> | undefined = batches.length > 0 ? prepare(batches[0]) : undefined;
    next?.catch(() => undefined);
    if (batches.length > 0) {
      options.onProgress?.({ done: 0, total: pending.length, encoded: 0, failed: failed.length, elapsedMs: 0, rate: 0 });
    }
    for (let b = 0; b < batches.length; b++) {
      const prepared = await next!;
      next = b + 1 < batches.length ? prepare(batches[b + 1]) : undefined;
      next?.catch(() => undefined);

      const rows: StoredImage[] = [];
      if (prepared.encode.length > 0) {
        const model = await getModel();
        const first = prepared.encode[0].pixels.dims;
        const per = first.slice(1).reduce((a, c) => a * c, 1);
        const data = new Float32Array(prepared.encode.length * per);
        prepared.encode.forEach((e, i) => data.set(e.pixels.data, i * per));
        const enc = await model.encodeImages({ data, dims: [prepared.encode.length, ...first.slice(1)] });
        const E = enc.embeds.dims[1];
        prepared.encode.forEach((e, i) => {
          rows.push({ path: e.item.path, size: e.item.size, mtimeMs: e.item.mtimeMs, sha256: e.sha256, vector: enc.embeds.data.slice(i * E, (i + 1) * E) });
        });
        encoded += prepared.encode.length;
      }
      if (prepared.reuse.length > 0) {
        // Touched but identical: keep the stored feature, record the new size/mtime.
        const vectors = new Map((await index.get(prepared.reuse.map((r) => r.item.path))).map((s) => [s.path, s.vector]));
        for (const r of prepared.reuse) {
          const vector = vectors.get(r.item.path);
          if (!vector) throw new BlipError(`${index.dir}: ${r.item.path} vanished from the index during the run (another blip-itm index running on it?)`);
          rows.push({ path: r.item.path, size: r.item.size, mtimeMs: r.item.mtimeMs, sha256: r.sha256, vector });
        }
      }
      for (const f of prepared.failed) failed.push({ path: f.item.path, error: f.error });
      // Old rows of this batch's paths go in one commit, the new rows come in the next.
      const drop = [...prepared.encode, ...prepared.reuse, ...prepared.failed].filter((x) => x.item.stored).map((x) => x.item.path);
      await index.remove(drop);
      await index.put(rows, []);
      for (const e of prepared.encode) {
        if (e.item.stored) updated++;
        else added++;
      }
      unchanged += prepared.reuse.length;

      done += batches[b].length;
      const elapsedMs = performance.now() - loopStart;
      const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
      options.onProgress?.({
        done, total: pending.length, encoded, failed: failed.length, elapsedMs, rate,
        etaSeconds: rate > 0 ? (pending.length - done) / rate : undefined,
      });
    }

    if (removed > 0 || staleRows.length > 0 || pending.length > 0) {
      status('compacting the index ...');
      await index.optimize();
    }
    failed.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return {
      db: index.dir, model: index.meta.model, added, updated, removed, unchanged, failed, encoded,
      total: await index.count(), seconds: (performance.now() - started) / 1000,
    };
  } finally {
    index.close();
    if (loading) await loading.then((m) => m.dispose(), () => undefined);
  }
}

/** A one-phrase reason for a failed read or stat. */
export function fsProblem(e: unknown): string {
  if (e instanceof FileError) return e.problem;
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT': return 'file not found';
    case 'EACCES': case 'EPERM': return `permission denied (${code})`;
    case 'EISDIR': return 'is a directory, not an image file';
    default: return code ? `cannot read file (${code})` : `cannot read file (${(e as Error)?.message ?? String(e)})`;
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let nextIndex = 0;
  const worker = async (): Promise<void> => {
    while (nextIndex < items.length) {
      const i = nextIndex++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
