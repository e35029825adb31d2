/**
 * Resolve a model reference (a local folder, or a Hugging Face Hub repo id) to a local folder
 * of checkpoint files, sharing the standard Hugging Face cache with Python's huggingface_hub.
 *
 * Cache layout (identical to what huggingface_hub >= 0.8 writes and reads):
 *
 *   <cache>/models--<owner>--<name>/
 *     blobs/<etag>                      file contents, named by the Hub's ETag
 *     blobs/<etag>.incomplete           a download in progress (resumed with HTTP Range)
 *     snapshots/<commit>/<file>         symlink -> ../../blobs/<etag>
 *     refs/<revision>                   commit sha of a branch/tag, no newline; a revision
 *                                       `refs/pr/5` lives at refs/refs/pr/5, like Python
 *     .no_exist/<commit>/<file>         empty marker: the file is known to be absent at that commit
 *
 * What comes from @huggingface/hub and what is ours (read from its 2.17 source):
 * - `getRepoFolderName` names the repo folder, and `modelInfo` does the
 *   `GET /api/models/{repo}/revision/{rev}` call that gives the commit sha and the file list.
 *   We hand `modelInfo` our own fetch wrapper that adds `Authorization`: its own `accessToken`
 *   check rejects tokens that do not start with `hf_` (mirrors and enterprise hubs may use
 *   others), and the wrapper is where network failures and the `X-Error-Code` header are seen.
 * - Its downloaders are NOT used: `downloadFileToCacheDir` puts each file under
 *   `snapshots/<last commit that touched the file>` (not the commit of the revision, as Python
 *   does, so the two would not share snapshots), writes no `refs/`, restarts `.incomplete`
 *   files from zero instead of resuming, verifies nothing, reports no progress and logs with
 *   console.debug; `snapshotDownload` fetches every file of the repo (for BLIP repos that means
 *   pytorch_model.bin and model.safetensors both, plus any TF/ONNX weights); `fileDownloadInfo`
 *   follows redirects, so for LFS files it reads the CDN's ETag (not the sha256) and never sees
 *   `X-Repo-Commit`. So the per-file protocol below is our own and follows huggingface_hub's:
 *   `HEAD /{repo}/resolve/{commit}/{file}` without following absolute redirects ->
 *   `X-Linked-Etag`/`ETag`, `X-Linked-Size`/`Content-Length`, `Location`; then a GET of the
 *   file (or of the CDN `Location`) into `blobs/<etag>.incomplete`, resumed with `Range`,
 *   checked against the etag, then renamed into place.
 * - `getHFHubCachePath` reads process.env only; `readHubEnv` below applies the same precedence
 *   (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub,
 *   ~/.cache/huggingface/hub) to any env object, so tests need not touch process.env.
 *
 * Not done: cross-process locking. huggingface_hub locks `.locks/<repo>/<etag>.lock` with
 * flock(2), which Node cannot do. Two processes downloading the same blob at once can mix their
 * writes in the `.incomplete` file; the checksum then fails and the file is deleted, never
 * installed. Within one process, downloads of the same blob are shared.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  copyFile,
  mkdir,
  open,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { HubApiError, getRepoFolderName, modelInfo } from '@huggingface/hub';
import { BlipError, CheckpointError, UsageError } from '../errors.js';
import { createProgressBar, type DownloadProgress, type ProgressListener } from './progress.js';

export type { DownloadProgress, ProgressListener } from './progress.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';
const REGEX_COMMIT_HASH = /^[0-9a-f]{40}$/;

// ---------------------------------------------------------------------------------------------
// Public types

/** Which files make up a checkpoint. */
export interface CheckpointFiles {
  /** Files that must exist; a repo without one of them is an error. */
  required: readonly string[];
  /** Files fetched when the repo has them. */
  optional?: readonly string[];
  /**
   * Weight files in order of preference: the first one the repo has is fetched, the others are
   * not. A name ending in `.index.json` is a sharded checkpoint's index; its shards come with it.
   */
  weights?: readonly string[];
}

/** What a BLIP image-text-matching checkpoint in transformers format consists of. */
export const BLIP_ITM_FILES: CheckpointFiles = {
  required: ['config.json', 'preprocessor_config.json', 'vocab.txt'],
  optional: ['tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.json', 'added_tokens.json'],
  weights: ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'],
};

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

export type HubErrorKind = 'network' | 'offline' | 'auth' | 'not-found' | 'integrity' | 'protocol' | 'http';

/** A Hub or cache problem the user can fix; `kind` says which, for callers that branch on it. */
export class HubError extends BlipError {
  readonly kind: HubErrorKind;
  constructor(kind: HubErrorKind, message: string, options?: { subject?: string; cause?: unknown }) {
    super(message, options);
    this.name = 'HubError';
    this.kind = kind;
  }
}

// ---------------------------------------------------------------------------------------------
// Environment

export interface HubEnv {
  /** Hub URL without trailing slash. */
  endpoint: string;
  /** Absolute path of the hub cache. */
  cacheDir: string;
  /** `$HF_HOME` (default ~/.cache/huggingface). */
  hfHome: string;
  token?: string;
  /** Where the token came from: 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN' or the token file path. */
  tokenSource?: string;
  offline: boolean;
  disableProgressBars: boolean;
  /** Timeout of metadata requests (API, HEAD): `$HF_HUB_ETAG_TIMEOUT` seconds, default 10. */
  etagTimeoutMs: number;
  /** A download fails after this long without receiving data: `$HF_HUB_DOWNLOAD_TIMEOUT` s, default 10. */
  downloadTimeoutMs: number;
  /** Home folder used for `~`. */
  home: string;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
}

/** Same truthy values as huggingface_hub's `_is_true`. */
function isTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(v.trim().toUpperCase());
}

function seconds(v: string | undefined, fallback: number): number {
  const n = v === undefined ? NaN : Number(v);
  return (Number.isFinite(n) && n > 0 ? n : fallback) * 1000;
}

/** `~` and `~/x` -> home folder (like Python's os.path.expanduser, which huggingface_hub applies). */
export function expandHome(p: string, home: string = homedir()): string {
  if (p === '~') return home;
  if (p.startsWith('~/') || p.startsWith('~\\')) return join(home, p.slice(2));
  return p;
}

/**
 * The HF_* settings, with huggingface_hub's precedence and defaults:
 * cache: HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > $HF_HOME/hub, HF_HOME defaulting to
 * $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface; token: HF_TOKEN > HUGGING_FACE_HUB_TOKEN >
 * the file at HF_TOKEN_PATH (default $HF_HOME/token); HF_ENDPOINT; HF_HUB_OFFLINE;
 * HF_HUB_DISABLE_PROGRESS_BARS; HF_HUB_ETAG_TIMEOUT; HF_HUB_DOWNLOAD_TIMEOUT.
 */
export function readHubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const home = nonEmpty(env.HOME) ?? nonEmpty(env.USERPROFILE) ?? homedir();
  const x = (p: string) => resolve(expandHome(p, home));
  const hfHome = x(nonEmpty(env.HF_HOME) ?? join(nonEmpty(env.XDG_CACHE_HOME) ?? join(home, '.cache'), 'huggingface'));
  const cacheDir = x(nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE) ?? join(hfHome, 'hub'));
  const endpoint = (nonEmpty(env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');

  let token: string | undefined;
  let tokenSource: string | undefined;
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const v = nonEmpty(env[name]);
    if (v !== undefined) {
      token = v;
      tokenSource = name;
      break;
    }
  }
  if (token === undefined) {
    const tokenPath = x(nonEmpty(env.HF_TOKEN_PATH) ?? join(hfHome, 'token'));
    try {
      const v = nonEmpty(readFileSync(tokenPath, 'utf8'));
      if (v !== undefined) {
        token = v;
        tokenSource = tokenPath;
      }
    } catch {
      // no token file: anonymous access
    }
  }

  return {
    endpoint,
    cacheDir,
    hfHome,
    token,
    tokenSource,
    offline: isTrue(env.HF_HUB_OFFLINE),
    disableProgressBars: isTrue(env.HF_HUB_DISABLE_PROGRESS_BARS),
    etagTimeoutMs: seconds(env.HF_HUB_ETAG_TIMEOUT, 10),
    downloadTimeoutMs: seconds(env.HF_HUB_DOWNLOAD_TIMEOUT, 10),
    home,
  };
}

// ---------------------------------------------------------------------------------------------
// Reference parsing

export type ModelReference = { kind: 'local'; path: string } | { kind: 'hub'; repo: string; revision?: string };

/** Hub repo names: letters, digits, `-`, `_`, `.`; optional `owner/` namespace. */
const REPO_ID = /^(?:[A-Za-z0-9][A-Za-z0-9._-]*\/)?[A-Za-z0-9][A-Za-z0-9._-]*$/;

function looksLikePath(s: string): boolean {
  const beforeAt = s.split('@')[0];
  return (
    s.startsWith('.') ||
    s.startsWith('/') ||
    s.startsWith('~') ||
    s.includes('\\') ||
    /^[A-Za-z]:/.test(s) ||
    s.endsWith('/') ||
    beforeAt.split('/').length > 2
  );
}

/**
 * An existing folder is a local checkpoint (even when it could also be a repo id, like
 * transformers does); a string that looks like a path but does not exist is an error naming
 * it; anything else must be a Hub repo id, `owner/name` or `owner/name@revision`.
 */
export async function parseModelReference(idOrPath: string, home: string = homedir()): Promise<ModelReference> {
  const input = idOrPath.trim();
  if (input === '') {
    throw new UsageError('empty model reference: give a local folder or a Hub repo id such as Salesforce/blip-itm-base-coco');
  }
  const expanded = expandHome(input, home);
  const st = await stat(expanded).catch(() => undefined);
  if (st?.isDirectory()) return { kind: 'local', path: resolve(expanded) };
  if (st) {
    throw new BlipError(`${input} is a file; give the folder that holds config.json and the model weights`, { subject: input });
  }
  if (looksLikePath(input)) {
    const abs = resolve(expanded);
    throw new BlipError(`no such folder: ${input}${abs !== input ? ` (${abs})` : ''}`, { subject: input });
  }
  const at = input.indexOf('@');
  const repo = at < 0 ? input : input.slice(0, at);
  const revision = at < 0 ? undefined : input.slice(at + 1);
  if (!REPO_ID.test(repo) || repo.includes('--') || repo.includes('..') || repo.length > 193) {
    throw new BlipError(
      `${input} is neither an existing folder nor a Hugging Face repo id (owner/name or owner/name@revision)`,
      { subject: input },
    );
  }
  if (revision !== undefined) checkRevision(revision, input);
  return { kind: 'hub', repo, revision };
}

/** A revision becomes a path under refs/; keep it inside. */
function checkRevision(revision: string, subject: string): void {
  const parts = revision.split('/');
  if (
    revision === '' ||
    revision.includes('\\') ||
    /[\x00-\x1f]/.test(revision) ||
    parts.some((p) => p === '' || p === '.' || p === '..')
  ) {
    throw new UsageError(`invalid revision "${revision}" in ${subject}: expected a branch, tag, commit sha or refs/pr/N`);
  }
}

/** A file name from the repo (or a shard index) becomes a path under snapshots/; keep it inside. */
function checkRelativeName(name: string, source: string): void {
  const parts = name.split('/');
  if (name === '' || name.includes('\\') || name.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new HubError('protocol', `${source} names an invalid file path: ${JSON.stringify(name)}`, { subject: source });
  }
}

// ---------------------------------------------------------------------------------------------
// Entry point

interface Ctx {
  repo: string;
  revision: string;
  endpoint: string;
  storage: string;
  token?: string;
  fetch: typeof fetch;
  onProgress?: ProgressListener;
  etagTimeoutMs: number;
  downloadTimeoutMs: number;
}

/**
 * Resolve `idOrPath` (local folder, `owner/name`, `owner/name@revision`) to a folder of
 * checkpoint files, downloading what the cache lacks. See the file comment for the cache layout.
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
  const ctx: Ctx = {
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
  ctx: Ctx,
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

// ---------------------------------------------------------------------------------------------
// Cache reading

function snapshotDir(ctx: Ctx, commit: string): string {
  return join(ctx.storage, 'snapshots', commit);
}

async function isFile(p: string): Promise<boolean> {
  // stat follows the snapshot symlink: a link to a deleted blob counts as missing.
  return stat(p).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** The commit the revision points to in the cache: the revision itself if it is a sha, else refs/<revision>. */
async function readCachedCommit(ctx: Ctx): Promise<string | undefined> {
  if (REGEX_COMMIT_HASH.test(ctx.revision)) {
    return (await exists(snapshotDir(ctx, ctx.revision))) ? ctx.revision : undefined;
  }
  try {
    const sha = (await readFile(join(ctx.storage, 'refs', ...ctx.revision.split('/')), 'utf8')).trim();
    return REGEX_COMMIT_HASH.test(sha) ? sha : undefined;
  } catch {
    return undefined;
  }
}

interface FolderScan {
  files: Record<string, string>;
  /** Required files (or weights) that are neither present nor resolvable. */
  missing: string[];
  /** Files whose presence on the Hub the cache cannot tell (strict scans only). */
  unknown: string[];
}

function scanSnapshot(ctx: Ctx, commit: string, spec: CheckpointFiles, lenient: boolean): Promise<FolderScan> {
  return scanFolder(snapshotDir(ctx, commit), join(ctx.storage, '.no_exist', commit), spec, lenient);
}

/**
 * Which of the spec's files a folder has. With `noExistDir`, a file marked there is known to be
 * absent. Strict (`lenient` false): an optional file or better weight that is neither present
 * nor marked absent is `unknown` (the Hub must be asked). Lenient: such files are skipped.
 */
async function scanFolder(dir: string, noExistDir: string | undefined, spec: CheckpointFiles, lenient: boolean): Promise<FolderScan> {
  const files: Record<string, string> = {};
  const missing: string[] = [];
  const unknown: string[] = [];
  const state = async (name: string): Promise<'present' | 'absent' | 'unknown'> => {
    if (await isFile(join(dir, name))) return 'present';
    if (noExistDir !== undefined && (await exists(join(noExistDir, name)))) return 'absent';
    return 'unknown';
  };

  for (const f of spec.required) {
    if ((await state(f)) === 'present') files[f] = join(dir, f);
    else missing.push(f);
  }
  for (const f of spec.optional ?? []) {
    const s = await state(f);
    if (s === 'present') files[f] = join(dir, f);
    else if (s === 'unknown' && !lenient) unknown.push(f);
  }
  const weights = spec.weights ?? [];
  let chosen = false;
  for (const w of weights) {
    const s = await state(w);
    if (s === 'present') {
      files[w] = join(dir, w);
      if (w.endsWith('.index.json')) {
        for (const shard of await readShardNames(files[w], w)) {
          if (await isFile(join(dir, shard))) files[shard] = join(dir, shard);
          else missing.push(shard);
        }
      }
      chosen = true;
      break;
    }
    if (s === 'unknown' && !lenient) {
      unknown.push(w);
      break;
    }
  }
  if (!chosen && unknown.length === 0 && weights.length > 0) missing.push(`model weights (${weights.join(', ')})`);
  return { files, missing, unknown };
}

/** Shard file names from a `*.index.json` (`{"weight_map": {tensor: file}}`), in first-seen order. */
async function readShardNames(indexPath: string, name: string): Promise<string[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new CheckpointError(indexPath, `cannot read shard index ${name}: ${(e as Error).message}`, { cause: e });
  }
  const map = (parsed as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new CheckpointError(indexPath, 'shard index has no "weight_map" object');
  }
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  for (const s of shards) {
    if (typeof s !== 'string') throw new CheckpointError(indexPath, `weight_map has a non-string file name: ${JSON.stringify(s)}`);
    checkRelativeName(s, indexPath);
  }
  return shards as string[];
}

// ---------------------------------------------------------------------------------------------
// Cache writing

/** Write a file so that readers see either the old content or the new, never a partial one. */
async function writeAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, content);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** refs/<revision> = commit, without newline (Python reads it with `f.read()`). Not for sha revisions. */
async function writeRef(ctx: Ctx, commit: string): Promise<void> {
  if (ctx.revision === commit) return;
  const path = join(ctx.storage, 'refs', ...ctx.revision.split('/'));
  const old = await readFile(path, 'utf8').catch(() => undefined);
  if (old !== commit) await writeAtomic(path, commit);
}

async function markAbsent(ctx: Ctx, commit: string, name: string): Promise<void> {
  const path = join(ctx.storage, '.no_exist', commit, ...name.split('/'));
  if (!(await exists(path))) {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '');
  }
}

/**
 * snapshots/<commit>/<name> -> relative link to the blob, as Python makes it. Made under a
 * temporary name and renamed, so the final name never points nowhere. Where symlinks are not
 * allowed (Windows without developer mode), the blob is copied, as Python does.
 */
async function linkIntoSnapshot(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  const tmp = `${pointer}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    try {
      await symlink(relative(dirname(pointer), blob), tmp);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP' && code !== 'EINVAL') throw e;
      await copyFile(blob, tmp);
    }
    await rename(tmp, pointer);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Network

/** The Hub could not be reached (connection, DNS, timeout, reset, 5xx). Turned into a HubError at the top. */
class NetworkFailure extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    readonly retryable: boolean,
    cause?: unknown,
  ) {
    super(`${url}: ${reason}`, cause === undefined ? undefined : { cause });
  }
}

/** Abort reason when a download receives nothing for HF_HUB_DOWNLOAD_TIMEOUT. */
class DownloadStalled extends Error {
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
function describeFetchError(e: unknown): string {
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

function authHeaders(ctx: Ctx, url: string, base?: HeadersInit): Headers {
  const h = new Headers(base);
  // The token goes to the Hub only, never to the CDN a file redirects to (its URL is signed).
  if (ctx.token !== undefined && new URL(url).origin === new URL(ctx.endpoint).origin) {
    h.set('Authorization', `Bearer ${ctx.token}`);
  }
  if (!h.has('User-Agent')) h.set('User-Agent', 'blip-itm; hf_hub-compatible');
  return h;
}

async function netFetch(ctx: Ctx, url: string, init: RequestInit, timeoutMs?: number): Promise<Response> {
  const signal = init.signal ?? (timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs));
  try {
    return await ctx.fetch(url, { ...init, headers: authHeaders(ctx, url, init.headers), signal });
  } catch (e) {
    const reason = describeFetchError(e);
    const text = reason === 'no answer in time' && timeoutMs ? `no answer within ${timeoutMs / 1000} s (HF_HUB_ETAG_TIMEOUT)` : reason;
    throw new NetworkFailure(url, text, true, e);
  }
}

function discard(res: Response): void {
  res.body?.cancel().catch(() => undefined);
}

/** `GET /api/models/{repo}/revision/{rev}` through @huggingface/hub's modelInfo: commit sha and file list. */
async function fetchListing(ctx: Ctx): Promise<{ commit: string; files: Set<string> }> {
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

function fileUrl(ctx: Ctx, commit: string, name: string): string {
  // Same quoting as huggingface_hub's hf_hub_url: revision fully escaped, file path keeps its slashes.
  return `${ctx.endpoint}/${ctx.repo}/resolve/${encodeURIComponent(commit)}/${name.split('/').map(encodeURIComponent).join('/')}`;
}

interface FileMeta {
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
async function headFile(ctx: Ctx, commit: string, name: string): Promise<FileMeta> {
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

/** snapshots/<commit>/<name>, fetched (or just linked to an existing blob) if absent. */
async function fetchIntoCache(ctx: Ctx, commit: string, name: string): Promise<string> {
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

function downloadBlobShared(ctx: Ctx, meta: FileMeta, blob: string): Promise<void> {
  let p = inflight.get(blob);
  if (p === undefined) {
    p = downloadBlob(ctx, meta, blob).finally(() => inflight.delete(blob));
    inflight.set(blob, p);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
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
async function downloadBlob(ctx: Ctx, meta: FileMeta, blob: string): Promise<void> {
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

function emit(ctx: Ctx, meta: FileMeta, phase: DownloadProgress['phase'], loaded: number, resumedFrom: number, total = meta.size): void {
  ctx.onProgress?.({ repo: ctx.repo, file: meta.name, phase, loaded, total, resumedFrom });
}

/** One GET attempt. Returns the running hash of the whole part file when it could be kept incrementally. */
async function fetchToPart(ctx: Ctx, meta: FileMeta, part: string, check: Check): Promise<{ hasher?: Hash; resumedFrom: number }> {
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
  ctx: Ctx,
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

// ---------------------------------------------------------------------------------------------
// Error messages

const LOCAL_HINT = 'or use a local folder with the model files: --model ./path/to/folder';

function statusError(ctx: Ctx, status: number, code: string | null, hubMessage: string | undefined, file?: string, cause?: unknown): HubError {
  const what = `${ctx.repo}@${ctx.revision}${file ? ` (${file})` : ''}`;
  const said = hubMessage ? `: "${hubMessage}"` : '';
  const opt = { subject: ctx.repo, cause };
  if (code === 'GatedRepo') {
    return new HubError(
      'auth',
      `${ctx.repo} is a gated repo${said}: accept its conditions at ${ctx.endpoint}/${ctx.repo} while logged in, ` +
        `then set HF_TOKEN to an access token of that account`,
      opt,
    );
  }
  if (code === 'RepositoryNotFound' || code === 'RevisionNotFound' || (status === 404 && file === undefined)) {
    return new HubError(
      'not-found',
      `no such repo or revision on ${ctx.endpoint}: ${ctx.repo}@${ctx.revision}${hubMessage ? ` ("${hubMessage}")` : ''}` +
        (ctx.token === undefined ? '. If the repo is private, set HF_TOKEN to an access token that can read it' : ''),
      opt,
    );
  }
  if (status === 404) {
    return new HubError('not-found', `${ctx.repo}@${ctx.revision} has no file ${file}${said}`, opt);
  }
  if (status === 401 || status === 403) {
    return new HubError(
      'auth',
      ctx.token === undefined
        ? `${ctx.endpoint} refused ${what} (HTTP ${status}${said}): the repo is private or gated. ` +
            `If you have access, set HF_TOKEN to an access token (${DEFAULT_ENDPOINT}/settings/tokens)`
        : `${ctx.endpoint} refused the access token for ${what} (HTTP ${status}${said}): ` +
            `check that HF_TOKEN holds a valid token that can read this repo`,
      opt,
    );
  }
  return new HubError('http', `${ctx.endpoint} answered HTTP ${status} for ${what}${said}`, opt);
}

function networkError(ctx: Ctx, f: NetworkFailure, missing: string[] | undefined): HubError {
  const cache =
    missing === undefined
      ? `the cache (${ctx.storage}) has nothing for it`
      : `the cache (${ctx.storage}) has only part of it (missing: ${missing.join(', ')})`;
  return new HubError(
    'network',
    `could not reach the Hugging Face Hub at ${ctx.endpoint} for ${ctx.repo}@${ctx.revision} ` +
      `(${f.url.split('?')[0]}: ${f.reason}), and ${cache}. Check the network or proxy, set HF_ENDPOINT to a reachable mirror, ` +
      `${LOCAL_HINT}. With a filled cache, HF_HUB_OFFLINE=1 skips the network.`,
    { subject: ctx.repo, cause: f },
  );
}

function offlineError(ctx: Ctx, missing: string[], commit?: string): HubError {
  const cache =
    commit === undefined
      ? `the cache (${ctx.storage}) has no copy of ${ctx.repo}@${ctx.revision}`
      : `the cache (${ctx.storage}) has only part of ${ctx.repo}@${ctx.revision} (commit ${commit.slice(0, 10)}; missing: ${missing.join(', ')})`;
  return new HubError(
    'offline',
    `offline mode is on (HF_HUB_OFFLINE), so nothing can be downloaded, and ${cache}. ` +
      `Run once with network access (HF_HUB_OFFLINE unset) to fill the cache, ${LOCAL_HINT}`,
    { subject: ctx.repo },
  );
}
