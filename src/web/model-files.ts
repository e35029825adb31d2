/**
 * Where a checkpoint's files come from in the browser: a Hub repo id (its `resolve` URLs), any
 * base URL, or Blobs/Files the page already has. Downloads go to Cache Storage, so a second visit
 * (or a second load in the same profile) fetches nothing; the weights are then read back as a
 * disk-backed Blob, never held in memory whole.
 */
import { CheckpointError } from '../errors.js';

export interface DownloadProgress {
  file: string;
  loaded: number;
  /** From Content-Length; undefined when the server sends none. */
  total: number | undefined;
  /** True when the file came from Cache Storage without a download. */
  cached: boolean;
}

export interface ModelFilesOptions {
  /** Hub revision for repo ids (default "main"). */
  revision?: string;
  /** Hub endpoint for repo ids (default https://huggingface.co). */
  hubUrl?: string;
  /** Cache Storage bucket name (default "blip-itm"); false: always download, keep nothing. */
  cache?: string | false;
  /** Extra fetch options (e.g. an Authorization header for gated repos). */
  fetchInit?: RequestInit;
  progress?: (event: DownloadProgress) => void;
}

export interface ModelFiles {
  /** The base URL or a description, for error messages (ends in "/" for URLs). */
  readonly label: string;
  /** The file as a Blob, or undefined when the checkpoint has no such file. */
  get(name: string): Promise<Blob | undefined>;
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*(\/[\w.-]+)?$/;

/** `Salesforce/blip-itm-base-coco` -> its Hub resolve URL; anything URL-like is taken as a base URL. */
export function modelBaseUrl(idOrUrl: string, options: Pick<ModelFilesOptions, 'revision' | 'hubUrl'> = {}): string {
  const looksLikeUrl = /^[a-z][a-z0-9+.-]*:/i.test(idOrUrl) || /^\.{0,2}\//.test(idOrUrl);
  if (!looksLikeUrl) {
    if (!REPO_ID.test(idOrUrl) || idOrUrl.includes('..')) {
      throw new CheckpointError(idOrUrl, 'expected a Hub repo id such as "Salesforce/blip-itm-base-coco" or a URL of a checkpoint folder');
    }
    const hub = (options.hubUrl ?? 'https://huggingface.co').replace(/\/+$/, '');
    return `${hub}/${idOrUrl}/resolve/${encodeURIComponent(options.revision ?? 'main')}/`;
  }
  const base = typeof location !== 'undefined' ? new URL(idOrUrl, location.href) : new URL(idOrUrl);
  return base.href.endsWith('/') ? base.href : `${base.href}/`;
}

export class UrlModelFiles implements ModelFiles {
  constructor(readonly label: string, private readonly options: ModelFilesOptions = {}) {}

  async get(name: string): Promise<Blob | undefined> {
    const url = new URL(name, this.label).href;
    const cache = await this.openCache();
    const hit = await cache?.match(url);
    if (hit) {
      if (hit.status === 404) return undefined;
      const blob = await hit.blob();
      this.options.progress?.({ file: name, loaded: blob.size, total: blob.size, cached: true });
      return blob;
    }
    let res: Response;
    try {
      res = await fetch(url, this.options.fetchInit);
    } catch (e) {
      throw new CheckpointError(url, `cannot fetch (${(e as Error).message})`, { cause: e });
    }
    if (res.status === 404) {
      await res.body?.cancel();
      // Remember the absence too, or every visit would ask again for the optional files.
      await cache?.put(url, new Response(null, { status: 404 }));
      return undefined;
    }
    if (!res.ok || !res.body) throw new CheckpointError(url, `cannot fetch (HTTP ${res.status})`);
    const total = Number(res.headers.get('content-length')) || undefined;
    const counted = this.counting(res.body, name, total);
    if (!cache) return new Response(counted).blob();
    try {
      await cache.put(url, new Response(counted, { headers: { 'content-type': res.headers.get('content-type') ?? 'application/octet-stream' } }));
      const stored = await cache.match(url);
      if (stored) return await stored.blob();
    } catch (e) {
      // Typically QuotaExceededError: the origin's storage quota is smaller than the file.
      console.warn(`blip-itm: ${url} could not be kept in Cache Storage (${(e as Error).name}: ${(e as Error).message}); it will be downloaded again next time`);
      await cache.delete(url).catch(() => false);
    }
    return this.download(url, name);
  }

  /** A download kept in memory only (the cache refused it). */
  private async download(url: string, name: string): Promise<Blob> {
    const res = await fetch(url, this.options.fetchInit);
    if (!res.ok || !res.body) throw new CheckpointError(url, `cannot fetch (HTTP ${res.status})`);
    return new Response(this.counting(res.body, name, Number(res.headers.get('content-length')) || undefined)).blob();
  }

  private counting(body: ReadableStream<Uint8Array>, file: string, total: number | undefined): ReadableStream<Uint8Array> {
    const progress = this.options.progress;
    if (!progress) return body;
    let loaded = 0;
    progress({ file, loaded, total, cached: false });
    return body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        loaded += chunk.byteLength;
        progress({ file, loaded, total, cached: false });
        controller.enqueue(chunk);
      },
    }));
  }

  private async openCache(): Promise<Cache | undefined> {
    if (this.options.cache === false || typeof caches === 'undefined') return undefined;
    return caches.open(this.options.cache ?? 'blip-itm');
  }
}

/** Files the page already holds, by name (e.g. from <input type="file" webkitdirectory>). */
export class BlobModelFiles implements ModelFiles {
  readonly label: string;

  constructor(private readonly files: ReadonlyMap<string, Blob>, label = '<local files>') {
    this.label = label;
  }

  static fromFileList(list: Iterable<File>): BlobModelFiles {
    // A folder pick names files "folder/config.json"; the checkpoint files are matched by base name.
    return new BlobModelFiles(new Map([...list].map((f) => [f.name.split('/').pop()!, f])));
  }

  async get(name: string): Promise<Blob | undefined> {
    return this.files.get(name);
  }
}

/** Deletes what fromPretrained() stored in Cache Storage (all models, or one base URL's files). */
export async function clearModelCache(options: { cache?: string; baseUrl?: string } = {}): Promise<void> {
  if (typeof caches === 'undefined') return;
  const name = options.cache ?? 'blip-itm';
  if (!options.baseUrl) {
    await caches.delete(name);
    return;
  }
  const cache = await caches.open(name);
  for (const req of await cache.keys()) if (req.url.startsWith(options.baseUrl)) await cache.delete(req);
}
