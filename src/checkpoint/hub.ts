/**
 * Resolve a model reference (a local folder, or a Hugging Face Hub repo id) to a local folder
 * of checkpoint files, sharing the standard Hugging Face cache with Python's huggingface_hub.
 *
 * This module is the entry point and decides what to do: use the cache alone when it can
 * answer, else ask the Hub for the commit and file list, choose the files, fetch what is
 * missing, and fall back to the cache when the Hub cannot be reached. The jobs it hands out:
 * - hub/reference.ts: model references, the HF_* environment, the files of a checkpoint;
 * - hub/cache.ts: the cache layout (snapshots, refs, blobs, .no_exist);
 * - hub/http.ts: requests to the Hub (file listing through @huggingface/hub's `modelInfo`, HEAD);
 * - hub/download.ts: the resumable, verified download of one file, with progress;
 * - hub/errors.ts: HubError and its messages.
 * What comes from @huggingface/hub, and why the rest is ours, is said where it applies: the
 * headers of hub/reference.ts (`getHFHubCachePath`), hub/http.ts (`modelInfo`,
 * `fileDownloadInfo`) and hub/download.ts (its downloaders). Used here: `getRepoFolderName`,
 * which names the repo's folder in the cache (`models--<owner>--<name>`).
 */
import { join, resolve } from 'node:path';
import { getRepoFolderName } from '@huggingface/hub';
import { UsageError } from '../errors.js';
import { markAbsent, readCachedCommit, readShardNames, scanFolder, scanSnapshot, snapshotDir, writeRef } from './hub/cache.js';
import { fetchIntoCache } from './hub/download.js';
import { HubError, NetworkFailure, networkError, offlineError } from './hub/errors.js';
import { fetchListing } from './hub/http.js';
import {
  BLIP_ITM_FILES,
  type CheckpointFiles,
  checkRevision,
  DEFAULT_ENDPOINT,
  DEFAULT_REVISION,
  expandHome,
  type HubContext,
  nonEmpty,
  parseModelReference,
  readHubEnv,
} from './hub/reference.js';
import { createProgressBar, type ProgressListener } from './progress.js';

export type { DownloadProgress, ProgressListener } from './progress.js';
export { HubError, type HubErrorKind } from './hub/errors.js';
export {
  BLIP_ITM_FILES,
  type CheckpointFiles,
  DEFAULT_ENDPOINT,
  DEFAULT_REVISION,
  expandHome,
  type HubEnv,
  type ModelReference,
  parseModelReference,
  readHubEnv,
} from './hub/reference.js';

export interface ResolveOptions {
  /** Branch, tag, commit sha or `refs/pr/N`. Wins over `owner/name@revision`. Default `main`. */
  revision?: string;
  /** Files to fetch; default {@link BLIP_ITM_FILES}. */
  files?: CheckpointFiles;
  /** Hub cache folder; default from the environment (see {@link readHubEnv}). */
  cacheDir?: string;
  /** Hub URL; default `$HF_ENDPOINT` or https://huggingface.co. */
  endpoint?: string;
  /** Access token; default `$HF_TOKEN` or the token file. `false`: send no token. */
  token?: string | false;
  /** No network at all, cache only; default `$HF_HUB_OFFLINE`. */
  offline?: boolean;
  /**
   * Ask the Hub even when the cache already has everything for this revision (to pick up new
   * commits on a branch). By default a complete cached snapshot is used without any request.
   */
  refresh?: boolean;
  /**
   * Progress of each download. Default: a progress bar on stderr when stderr is a TTY (and
   * HF_HUB_DISABLE_PROGRESS_BARS is not set), else nothing. `false`: nothing.
   */
  onProgress?: ProgressListener | false;
  /** fetch implementation (proxies, tests); default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Environment to read the HF_* defaults from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Alias of {@link ResolveOptions}. */
export type ResolveCheckpointOptions = ResolveOptions;

export interface ResolvedCheckpoint {
  source: 'local' | 'hub';
  /** Repo id (`owner/name`) for the Hub; the absolute folder path for a local folder. */
  id: string;
  /** The revision asked for (Hub only). */
  revision?: string;
  /** The commit sha the revision resolved to (Hub only). */
  commit?: string;
  /** Absolute path of the folder holding the files (a snapshot folder for the Hub). */
  dir: string;
  /** File name (as in the repo) -> absolute path, for the files of the spec that exist. */
  files: Record<string, string>;
}

/**
 * Resolve `idOrPath` (local folder, `owner/name`, `owner/name@revision`) to a folder of
 * checkpoint files, downloading what the cache lacks. See hub/cache.ts for the cache layout.
 */
export async function resolveCheckpoint(idOrPath: string, opts: ResolveOptions = {}): Promise<ResolvedCheckpoint> {
  const env = readHubEnv(opts.env ?? process.env);
  const spec = opts.files ?? BLIP_ITM_FILES;
  const ref = await parseModelReference(idOrPath, env.home);

  if (ref.kind === 'local') {
    // Used as is: we report which of the spec's files are there; the loaders report what is missing.
    const scan = await scanFolder(ref.path, undefined, spec, true);
    return { source: 'local', id: ref.path, dir: ref.path, files: scan.files };
  }

  const revision = opts.revision ?? ref.revision ?? DEFAULT_REVISION;
  checkRevision(revision, idOrPath);
  const cacheDir = resolve(expandHome(opts.cacheDir ?? env.cacheDir, env.home));
  const token = opts.token === false ? undefined : nonEmpty(opts.token) ?? env.token;
  const endpoint = (opts.endpoint ?? env.endpoint).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]/.test(endpoint) || !URL.canParse(endpoint)) {
    throw new UsageError(`invalid Hub endpoint "${endpoint}" (HF_ENDPOINT): expected a URL such as ${DEFAULT_ENDPOINT}`);
  }
  const ctx: HubContext = {
    repo: ref.repo,
    revision,
    endpoint,
    storage: join(cacheDir, getRepoFolderName({ type: 'model', name: ref.repo })),
    token,
    fetch: opts.fetch ?? globalThis.fetch,
    onProgress:
      opts.onProgress === false
        ? undefined
        : opts.onProgress ?? (env.disableProgressBars ? undefined : createProgressBar(process.stderr)),
    etagTimeoutMs: env.etagTimeoutMs,
    downloadTimeoutMs: env.downloadTimeoutMs,
  };
  return resolveFromHub(ctx, spec, { offline: opts.offline ?? env.offline, refresh: opts.refresh ?? false });
}

async function resolveFromHub(
  ctx: HubContext,
  spec: CheckpointFiles,
  mode: { offline: boolean; refresh: boolean },
): Promise<ResolvedCheckpoint> {
  const result = (commit: string, files: Record<string, string>): ResolvedCheckpoint => ({
    source: 'hub',
    id: ctx.repo,
    revision: ctx.revision,
    commit,
    dir: snapshotDir(ctx, commit),
    files,
  });

  // 1. The cache alone, when it can answer.
  const cachedCommit = await readCachedCommit(ctx);
  if (mode.offline) {
    if (cachedCommit === undefined) throw offlineError(ctx, []);
    const scan = await scanSnapshot(ctx, cachedCommit, spec, true);
    if (scan.missing.length > 0) throw offlineError(ctx, scan.missing, cachedCommit);
    return result(cachedCommit, scan.files);
  }
  if (cachedCommit !== undefined && !mode.refresh) {
    const scan = await scanSnapshot(ctx, cachedCommit, spec, false);
    if (scan.missing.length === 0 && scan.unknown.length === 0) return result(cachedCommit, scan.files);
  }

  // 2. Ask the Hub for the commit and the file list.
  let listing: { commit: string; files: Set<string> };
  try {
    listing = await fetchListing(ctx);
  } catch (e) {
    if (!(e instanceof NetworkFailure)) throw e;
    // Like huggingface_hub: when the Hub cannot be reached, fall back to what the cache has.
    let missing: string[] = [];
    if (cachedCommit !== undefined) {
      const scan = await scanSnapshot(ctx, cachedCommit, spec, true);
      if (scan.missing.length === 0) return result(cachedCommit, scan.files);
      missing = scan.missing;
    }
    throw networkError(ctx, e, cachedCommit === undefined ? undefined : missing);
  }
  const commit = listing.commit;
  await writeRef(ctx, commit);

  // 3. Decide which files to fetch, remember which are absent, fetch.
  const plan = planFiles(spec, listing.files);
  for (const name of plan.absent) await markAbsent(ctx, commit, name);
  if (plan.missing.length > 0) {
    throw new HubError(
      'not-found',
      `${ctx.repo}@${ctx.revision} (commit ${commit.slice(0, 10)}) has no ${plan.missing.join(', ')}; ` +
        `is it a BLIP checkpoint in transformers format?`,
      { subject: ctx.repo },
    );
  }
  const files: Record<string, string> = {};
  try {
    for (const name of plan.fetch) {
      files[name] = await fetchIntoCache(ctx, commit, name);
      if (name.endsWith('.index.json') && (spec.weights ?? []).includes(name)) {
        for (const shard of await readShardNames(files[name], name)) {
          if (!listing.files.has(shard)) {
            throw new HubError('not-found', `${ctx.repo}@${ctx.revision}: ${name} lists shard ${shard}, which the repo does not have`, {
              subject: ctx.repo,
            });
          }
          files[shard] = await fetchIntoCache(ctx, commit, shard);
        }
      }
    }
  } catch (e) {
    if (e instanceof NetworkFailure) {
      const scan = await scanSnapshot(ctx, commit, spec, true);
      throw networkError(ctx, e, scan.missing);
    }
    throw e;
  }
  return result(commit, files);
}

function planFiles(spec: CheckpointFiles, listed: Set<string>): { fetch: string[]; absent: string[]; missing: string[] } {
  const fetch: string[] = [];
  const absent: string[] = [];
  const missing: string[] = [];
  for (const f of spec.required) (listed.has(f) ? fetch : missing).push(f);
  for (const f of spec.optional ?? []) (listed.has(f) ? fetch : absent).push(f);
  const weights = spec.weights ?? [];
  const chosen = weights.find((w) => listed.has(w));
  if (chosen === undefined) {
    if (weights.length > 0) missing.push(`model weights (${weights.join(', ')})`);
    absent.push(...weights);
  } else {
    fetch.push(chosen);
    // The better candidates are absent at this commit; recording it lets later runs use the
    // cache without asking (Python's huggingface_hub records 404s the same way).
    absent.push(...weights.slice(0, weights.indexOf(chosen)));
  }
  return { fetch, absent, missing };
}
