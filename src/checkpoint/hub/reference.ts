/**
 * What to fetch and from where: model references (a local folder, or a Hub repo id with an
 * optional revision), the HF_* environment with huggingface_hub's precedence, the files that
 * make up a BLIP checkpoint, and the settings of one resolve call.
 *
 * From @huggingface/hub: `getHFHubCachePath` reads process.env only; `readHubEnv` below applies
 * the same precedence (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,
 * XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub) to any env object, so tests need not
 * touch process.env.
 */
import { readFileSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { BlipError, UsageError } from '../../errors.js';
import { FILE_LIMITS } from '../../io/files.js';
import type { ProgressListener } from '../progress.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_REVISION = 'main';
export const REGEX_COMMIT_HASH = /^[0-9a-f]{40}$/;

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

export function nonEmpty(v: string | undefined): string | undefined {
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
      // Read synchronously (the environment is read before anything async), so the checks of
      // src/io/files.ts are repeated here: a FIFO or device would block or never end.
      const st = statSync(tokenPath);
      if (!st.isFile() || st.size > FILE_LIMITS.secret) throw new Error('not a token file');
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
export function checkRevision(revision: string, subject: string): void {
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

/** One resolve call's settings: the repo and revision, where its cache lives, and how to reach the Hub. */
export interface HubContext {
  repo: string;
  revision: string;
  endpoint: string;
  /** The repo's folder in the cache: `<cache>/models--<owner>--<name>`. */
  storage: string;
  token?: string;
  fetch: typeof fetch;
  onProgress?: ProgressListener;
  etagTimeoutMs: number;
  downloadTimeoutMs: number;
}
