/**
 * Talking to the Hub: the fetch wrapper (token, User-Agent, timeouts, network failures in
 * words), the file listing, and the per-file metadata request.
 *
 * From @huggingface/hub: `modelInfo` does the `GET /api/models/{repo}/revision/{rev}` call that
 * gives the commit sha and the file list. We hand it our own fetch wrapper that adds
 * `Authorization`: its own `accessToken` check rejects tokens that do not start with `hf_`
 * (mirrors and enterprise hubs may use others), and the wrapper is where network failures and
 * the `X-Error-Code` header are seen.
 *
 * Its `fileDownloadInfo` is not used: it follows redirects, so for LFS files it reads the CDN's
 * ETag (not the sha256) and never sees `X-Repo-Commit`. `headFile` below follows
 * huggingface_hub's get_hf_file_metadata instead: `HEAD /{repo}/resolve/{commit}/{file}`
 * without following absolute redirects -> `X-Linked-Etag`/`ETag`, `X-Linked-Size`/
 * `Content-Length`, `Location`.
 */
import { HubApiError, modelInfo } from '@huggingface/hub';
import { HubError, NetworkFailure, statusError } from './errors.js';
import { type HubContext, REGEX_COMMIT_HASH } from './reference.js';

/** Abort reason when a download receives nothing for HF_HUB_DOWNLOAD_TIMEOUT. */
export class DownloadStalled extends Error {
  constructor(ms: number) {
    super(`no data received for ${ms / 1000} s (HF_HUB_DOWNLOAD_TIMEOUT)`);
    this.name = 'DownloadStalled';
  }
}

const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  ETIMEDOUT: 'connection timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  CERT_HAS_EXPIRED: 'TLS certificate expired',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'TLS certificate not trusted',
};

/** A short reason from undici's `TypeError: fetch failed` and its cause chain. */
export function describeFetchError(e: unknown): string {
  let cur: unknown = e;
  let fallback = '';
  for (let depth = 0; depth < 6 && cur != null; depth++) {
    if (cur instanceof DownloadStalled) return cur.message;
    const err = cur as { name?: string; code?: string; message?: string; cause?: unknown; errors?: unknown[] };
    if (err.name === 'TimeoutError') return 'no answer in time';
    if (typeof err.code === 'string') return ERRNO_TEXT[err.code] ? `${ERRNO_TEXT[err.code]}, ${err.code}` : err.code;
    if (err.message && err.message !== 'fetch failed') fallback ||= err.message;
    cur = err.cause ?? err.errors?.[0];
  }
  return fallback || String((e as Error)?.message ?? e);
}

function authHeaders(ctx: HubContext, url: string, base?: HeadersInit): Headers {
  const h = new Headers(base);
  // The token goes to the Hub only, never to the CDN a file redirects to (its URL is signed).
  if (ctx.token !== undefined && new URL(url).origin === new URL(ctx.endpoint).origin) {
    h.set('Authorization', `Bearer ${ctx.token}`);
  }
  if (!h.has('User-Agent')) h.set('User-Agent', 'blip-itm; hf_hub-compatible');
  return h;
}

export async function netFetch(ctx: HubContext, url: string, init: RequestInit, timeoutMs?: number): Promise<Response> {
  const signal = init.signal ?? (timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs));
  try {
    return await ctx.fetch(url, { ...init, headers: authHeaders(ctx, url, init.headers), signal });
  } catch (e) {
    const reason = describeFetchError(e);
    const text = reason === 'no answer in time' && timeoutMs ? `no answer within ${timeoutMs / 1000} s (HF_HUB_ETAG_TIMEOUT)` : reason;
    throw new NetworkFailure(url, text, true, e);
  }
}

export function discard(res: Response): void {
  res.body?.cancel().catch(() => undefined);
}

/** `GET /api/models/{repo}/revision/{rev}` through @huggingface/hub's modelInfo: commit sha and file list. */
export async function fetchListing(ctx: HubContext): Promise<{ commit: string; files: Set<string> }> {
  let errorCode: string | null = null;
  const wrapped: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const res = await netFetch(ctx, url, init ?? {}, ctx.etagTimeoutMs);
    errorCode = res.headers.get('x-error-code');
    if (res.status >= 500) {
      discard(res);
      throw new NetworkFailure(url, `HTTP ${res.status}`, true);
    }
    return res;
  };
  let info: { sha?: unknown; filePaths?: unknown };
  try {
    info = await modelInfo({
      name: ctx.repo,
      revision: ctx.revision,
      hubUrl: ctx.endpoint,
      fetch: wrapped,
      additionalFields: ['sha', 'filePaths'],
    });
  } catch (e) {
    if (e instanceof NetworkFailure) throw e;
    if (e instanceof HubApiError) {
      const data = e.data as { error?: unknown } | undefined;
      const hubMessage = typeof data?.error === 'string' ? data.error : undefined;
      throw statusError(ctx, e.statusCode, errorCode, hubMessage, undefined, e);
    }
    throw new HubError(
      'protocol',
      `${ctx.endpoint} did not answer like the Hugging Face Hub API for ${ctx.repo}@${ctx.revision} (${(e as Error).message}); ` +
        `check HF_ENDPOINT`,
      { subject: ctx.repo, cause: e },
    );
  }
  const commit = typeof info.sha === 'string' ? info.sha : '';
  if (!REGEX_COMMIT_HASH.test(commit) || !Array.isArray(info.filePaths)) {
    throw new HubError('protocol', `${ctx.endpoint}: the API answer for ${ctx.repo}@${ctx.revision} has no commit sha or file list`, {
      subject: ctx.repo,
    });
  }
  return { commit, files: new Set(info.filePaths.filter((f): f is string => typeof f === 'string')) };
}

function fileUrl(ctx: HubContext, commit: string, name: string): string {
  // Same quoting as huggingface_hub's hf_hub_url: revision fully escaped, file path keeps its slashes.
  return `${ctx.endpoint}/${ctx.repo}/resolve/${encodeURIComponent(commit)}/${name.split('/').map(encodeURIComponent).join('/')}`;
}

export interface FileMeta {
  name: string;
  etag: string;
  size?: number;
  /** Hub URL for git files, CDN URL (from the redirect) for LFS files. */
  downloadUrl: string;
}

function normalizeEtag(raw: string | null): string | undefined {
  if (raw === null) return undefined;
  const e = raw.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
  return e === '' ? undefined : e;
}

/**
 * huggingface_hub's get_hf_file_metadata: HEAD the resolve URL, following only relative
 * redirects (a renamed repo); an absolute redirect is the CDN location of an LFS file, whose
 * `X-Linked-Etag` / `X-Linked-Size` describe the real content.
 */
export async function headFile(ctx: HubContext, commit: string, name: string): Promise<FileMeta> {
  let url = fileUrl(ctx, commit, name);
  for (let hops = 0; ; hops++) {
    const res = await netFetch(ctx, url, { method: 'HEAD', redirect: 'manual', headers: { 'Accept-Encoding': 'identity' } }, ctx.etagTimeoutMs);
    discard(res);
    let downloadUrl = url;
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      if (location === null) throw new HubError('protocol', `${url}: HTTP ${res.status} redirect without Location`, { subject: ctx.repo });
      const relativeLocation = !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(location) && !location.startsWith('//');
      if (relativeLocation && hops < 10) {
        url = new URL(location, url).href;
        continue;
      }
      downloadUrl = new URL(location, url).href;
    } else if (res.status >= 500) {
      throw new NetworkFailure(url, `HTTP ${res.status}`, true);
    } else if (!res.ok) {
      throw statusError(ctx, res.status, res.headers.get('x-error-code'), undefined, name);
    }
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    if (etag === undefined || !/^[A-Za-z0-9][A-Za-z0-9._+=-]*$/.test(etag)) {
      throw new HubError('protocol', `${url}: the server sent no usable ETag (${etag ?? 'none'}), so the file cannot be cached or verified`, {
        subject: ctx.repo,
      });
    }
    const sizeHeader = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
    const size = sizeHeader !== null && /^\d+$/.test(sizeHeader.trim()) ? Number(sizeHeader) : undefined;
    return { name, etag, size, downloadUrl };
  }
}
