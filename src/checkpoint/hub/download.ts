/**
 * The download protocol: one file of a commit into the cache, resumed, verified, with progress.
 *
 * From @huggingface/hub, the downloaders are NOT used: `downloadFileToCacheDir` puts each file
 * under `snapshots/<last commit that touched the file>` (not the commit of the revision, as
 * Python does, so the two would not share snapshots), writes no `refs/`, restarts `.incomplete`
 * files from zero instead of resuming, verifies nothing, reports no progress and logs with
 * console.debug; `snapshotDownload` fetches every file of the repo (for BLIP repos that means
 * pytorch_model.bin and model.safetensors both, plus any TF/ONNX weights). So the per-file
 * protocol here is our own and follows huggingface_hub's: HEAD for the etag and size
 * (http.ts), then a GET of the file (or of the CDN `Location`) into
 * `blobs/<etag>.incomplete`, resumed with `Range`, checked against the etag, then renamed into
 * place and linked from the snapshot (cache.ts).
 *
 * Not done: cross-process locking. huggingface_hub locks `.locks/<repo>/<etag>.lock` with
 * flock(2), which Node cannot do. Two processes downloading the same blob at once can mix their
 * writes in the `.incomplete` file; the checksum then fails and the file is deleted, never
 * installed. Within one process, downloads of the same blob are shared.
 */
import { createHash, type Hash } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkRelativeName, isFile, linkIntoSnapshot, snapshotDir } from './cache.js';
import { HubError, NetworkFailure, statusError } from './errors.js';
import { describeFetchError, discard, DownloadStalled, type FileMeta, headFile, netFetch } from './http.js';
import type { HubContext } from './reference.js';
import type { DownloadProgress } from '../progress.js';

/** snapshots/<commit>/<name>, fetched (or just linked to an existing blob) if absent. */
export async function fetchIntoCache(ctx: HubContext, commit: string, name: string): Promise<string> {
  checkRelativeName(name, `${ctx.repo} file list`);
  const pointer = join(snapshotDir(ctx, commit), ...name.split('/'));
  if (await isFile(pointer)) return pointer;
  const meta = await headFile(ctx, commit, name);
  const blob = join(ctx.storage, 'blobs', meta.etag);
  if (!(await isFile(blob))) await downloadBlobShared(ctx, meta, blob);
  await linkIntoSnapshot(blob, pointer);
  return pointer;
}

const inflight = new Map<string, Promise<void>>();

function downloadBlobShared(ctx: HubContext, meta: FileMeta, blob: string): Promise<void> {
  let p = inflight.get(blob);
  if (p === undefined) {
    p = downloadBlob(ctx, meta, blob).finally(() => inflight.delete(blob));
    inflight.set(blob, p);
  }
  return p;
}

// Download, resume, verify

type Check = { kind: 'sha256' | 'git-sha1'; expected: string } | undefined;

/**
 * What the Hub's etag promises: for LFS files it is the sha256 of the content; for files stored
 * in git it is the git blob id, sha1("blob <size>\0" + content). Other etags (a mirror that
 * makes up its own) cannot be checked; then only the size is.
 */
function checkFor(etag: string): Check {
  if (/^[0-9a-f]{64}$/.test(etag)) return { kind: 'sha256', expected: etag };
  if (/^[0-9a-f]{40}$/.test(etag)) return { kind: 'git-sha1', expected: etag };
  return undefined;
}

function newHasher(check: Check, size: number | undefined): Hash | undefined {
  if (check === undefined) return undefined;
  if (check.kind === 'sha256') return createHash('sha256');
  if (size === undefined) return undefined; // git header needs the size up front: hash from disk afterwards
  return createHash('sha1').update(`blob ${size}\0`);
}

async function hashFromDisk(path: string, check: NonNullable<Check>, size: number, upTo = size): Promise<Hash> {
  const h = check.kind === 'sha256' ? createHash('sha256') : createHash('sha1').update(`blob ${size}\0`);
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let pos = 0;
    while (pos < upTo) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, upTo - pos), pos);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return h;
}

async function sizeOf(path: string): Promise<number> {
  return stat(path).then(
    (s) => s.size,
    () => 0,
  );
}

const MAX_NETWORK_RETRIES = 5;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Download into blobs/<etag>.incomplete, resuming what an earlier run left there, check the
 * result against the etag, then rename it to blobs/<etag> (atomic on one file system). A check
 * failure deletes the partial file; if the bad data came partly from an earlier run, the file
 * is downloaded once more from scratch before giving up. Connection drops mid-file are retried
 * (resuming) up to MAX_NETWORK_RETRIES times, like huggingface_hub's http_get.
 */
async function downloadBlob(ctx: HubContext, meta: FileMeta, blob: string): Promise<void> {
  await mkdir(dirname(blob), { recursive: true });
  const part = `${blob}.incomplete`;
  const check = checkFor(meta.etag);
  let retries = 0;
  let restarted = false;
  for (;;) {
    let got: { hasher?: Hash; resumedFrom: number };
    try {
      got = await fetchToPart(ctx, meta, part, check);
    } catch (e) {
      if (e instanceof NetworkFailure && e.retryable && retries < MAX_NETWORK_RETRIES) {
        retries++;
        await sleep(Math.min(2000, 100 * 2 ** retries));
        continue;
      }
      throw e;
    }
    const problem = await verify(part, meta, check, got.hasher);
    if (problem === undefined) {
      await rename(part, blob);
      emit(ctx, meta, 'done', meta.size ?? (await sizeOf(blob)), got.resumedFrom);
      return;
    }
    await rm(part, { force: true });
    emit(ctx, meta, 'failed', 0, got.resumedFrom);
    if (got.resumedFrom > 0 && !restarted) {
      restarted = true; // the kept partial data may be what was wrong
      continue;
    }
    throw new HubError(
      'integrity',
      `${meta.name} from ${ctx.repo}@${ctx.revision}: the downloaded data does not match what the Hub announced (${problem}); ` +
        `the partial file was deleted. Try again; if it keeps happening, a proxy or the mirror in HF_ENDPOINT is altering files.`,
      { subject: meta.name },
    );
  }
}

function emit(ctx: HubContext, meta: FileMeta, phase: DownloadProgress['phase'], loaded: number, resumedFrom: number, total = meta.size): void {
  ctx.onProgress?.({ repo: ctx.repo, file: meta.name, phase, loaded, total, resumedFrom });
}

/** One GET attempt. Returns the running hash of the whole part file when it could be kept incrementally. */
async function fetchToPart(ctx: HubContext, meta: FileMeta, part: string, check: Check): Promise<{ hasher?: Hash; resumedFrom: number }> {
  let start = await sizeOf(part);
  if (meta.size !== undefined && start > meta.size) {
    await rm(part, { force: true });
    start = 0;
  }
  if (start > 0 && start === meta.size) {
    // A complete but unverified leftover (e.g. the process died before the rename): just check it.
    return { hasher: check ? await hashFromDisk(part, check, meta.size) : undefined, resumedFrom: start };
  }

  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new DownloadStalled(ctx.downloadTimeoutMs)), ctx.downloadTimeoutMs);
  };
  const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
  if (start > 0) headers.Range = `bytes=${start}-`;
  arm();
  try {
    const res = await netFetch(ctx, meta.downloadUrl, { headers, signal: controller.signal, redirect: 'follow' });
    if (start > 0) {
      const range = res.headers.get('content-range');
      if (res.status === 416) {
        discard(res);
        await rm(part, { force: true }); // our partial file does not fit the server's file
        throw new NetworkFailure(meta.downloadUrl, 'range not satisfiable, restarting', true);
      }
      if (res.status === 206 && range !== null && range.startsWith(`bytes ${start}-`)) {
        // resumed: append to what is there
      } else if (res.status === 200) {
        start = 0; // the server ignored Range: start over
      } else if (res.ok) {
        discard(res);
        await rm(part, { force: true });
        throw new NetworkFailure(meta.downloadUrl, `unexpected answer to a Range request (HTTP ${res.status} ${range ?? ''})`, true);
      }
    }
    if (res.status >= 500 || res.status === 429) {
      discard(res);
      throw new NetworkFailure(meta.downloadUrl, `HTTP ${res.status}`, true);
    }
    if (!res.ok || res.body === null) {
      discard(res);
      throw statusError(ctx, res.status, res.headers.get('x-error-code'), undefined, meta.name);
    }
    const contentLength = Number(res.headers.get('content-length') ?? NaN);
    const total = meta.size ?? (Number.isFinite(contentLength) ? start + contentLength : undefined);
    let hasher = newHasher(check, meta.size);
    // Resumed: the bytes already on disk go into the hash first.
    if (hasher !== undefined && start > 0) hasher = await hashFromDisk(part, check!, meta.size ?? 0, start);
    return await streamBody(ctx, meta, res, part, start, total, hasher, arm);
  } finally {
    clearTimeout(timer);
  }
}

async function streamBody(
  ctx: HubContext,
  meta: FileMeta,
  res: Response,
  part: string,
  start: number,
  total: number | undefined,
  hasher: Hash | undefined,
  arm: () => void,
): Promise<{ hasher?: Hash; resumedFrom: number }> {
  const fh = await open(part, start > 0 ? 'a' : 'w');
  let loaded = start;
  emit(ctx, meta, 'start', loaded, start, total);
  const reader = res.body!.getReader();
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw new NetworkFailure(meta.downloadUrl, `download interrupted after ${loaded} bytes: ${describeFetchError(e)}`, true, e);
      }
      if (chunk.done) {
        // A body that ends early without an error (connection closed cleanly): resume, don't discard.
        if (meta.size !== undefined && loaded < meta.size) {
          throw new NetworkFailure(meta.downloadUrl, `download ended after ${loaded} of ${meta.size} bytes`, true);
        }
        break;
      }
      arm();
      hasher?.update(chunk.value);
      await fh.write(chunk.value);
      loaded += chunk.value.byteLength;
      emit(ctx, meta, 'data', loaded, start, total);
    }
  } catch (e) {
    emit(ctx, meta, 'failed', loaded, start, total);
    reader.cancel().catch(() => undefined);
    throw e;
  } finally {
    await fh.close();
  }
  return { hasher, resumedFrom: start };
}

/** undefined when the part file is what the etag and size promise, else what is wrong. */
async function verify(part: string, meta: FileMeta, check: Check, hasher: Hash | undefined): Promise<string | undefined> {
  const size = await sizeOf(part);
  if (meta.size !== undefined && size !== meta.size) return `${size} bytes, expected ${meta.size}`;
  if (check === undefined) return undefined;
  const actual = (hasher ?? (await hashFromDisk(part, check, size))).digest('hex');
  if (actual !== check.expected) return `${check.kind} ${actual}, expected ${check.expected}`;
  return undefined;
}
