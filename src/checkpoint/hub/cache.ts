/**
 * The Hugging Face cache layout, read and written exactly as huggingface_hub >= 0.8 does, so the
 * cache is shared with Python:
 *
 *   <cache>/models--<owner>--<name>/
 *     blobs/<etag>                      file contents, named by the Hub's ETag
 *     blobs/<etag>.incomplete           a download in progress (resumed with HTTP Range)
 *     snapshots/<commit>/<file>         symlink -> ../../blobs/<etag>
 *     refs/<revision>                   commit sha of a branch/tag, no newline; a revision
 *                                       `refs/pr/5` lives at refs/refs/pr/5, like Python
 *     .no_exist/<commit>/<file>         empty marker: the file is known to be absent at that commit
 *
 * Writes are atomic (temporary name, then rename), so a reader never sees half a ref or a
 * snapshot link pointing nowhere.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { CheckpointError } from '../../errors.js';
import { FileError, readRegularFile } from '../../io/files.js';
import { HubError } from './errors.js';
import { type CheckpointFiles, REGEX_COMMIT_HASH } from './reference.js';

/** Where one repo and revision live in the cache. */
export interface CacheRepo {
  /** The repo's folder: `<cache>/models--<owner>--<name>`. */
  storage: string;
  /** Branch, tag, commit sha or `refs/pr/N`. */
  revision: string;
}

/** A file name from the repo (or a shard index) becomes a path under snapshots/; keep it inside. */
export function checkRelativeName(name: string, source: string): void {
  const parts = name.split('/');
  if (name === '' || name.includes('\\') || name.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new HubError('protocol', `${source} names an invalid file path: ${JSON.stringify(name)}`, { subject: source });
  }
}

// Cache reading

export function snapshotDir(ctx: CacheRepo, commit: string): string {
  return join(ctx.storage, 'snapshots', commit);
}

export async function isFile(p: string): Promise<boolean> {
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
export async function readCachedCommit(ctx: CacheRepo): Promise<string | undefined> {
  if (REGEX_COMMIT_HASH.test(ctx.revision)) {
    return (await exists(snapshotDir(ctx, ctx.revision))) ? ctx.revision : undefined;
  }
  const sha = (await readRef(refPath(ctx)))?.trim();
  return sha !== undefined && REGEX_COMMIT_HASH.test(sha) ? sha : undefined;
}

function refPath(ctx: CacheRepo): string {
  return join(ctx.storage, 'refs', ...ctx.revision.split('/'));
}

/**
 * A refs/ file's text, or undefined when there is none. Read through src/io/files.ts, so a FIFO
 * or device there is a one-line error instead of a read that never returns.
 */
async function readRef(path: string): Promise<string | undefined> {
  try {
    return (await readRegularFile(path, { kind: 'configJson', what: 'a Hub cache ref' })).toString('utf8');
  } catch (e) {
    const code = ((e as FileError).cause as NodeJS.ErrnoException | undefined)?.code;
    if (e instanceof FileError && (code === 'ENOENT' || code === 'ENOTDIR')) return undefined;
    throw e;
  }
}

export interface FolderScan {
  files: Record<string, string>;
  /** Required files (or weights) that are neither present nor resolvable. */
  missing: string[];
  /** Files whose presence on the Hub the cache cannot tell (strict scans only). */
  unknown: string[];
}

export function scanSnapshot(ctx: CacheRepo, commit: string, spec: CheckpointFiles, lenient: boolean): Promise<FolderScan> {
  return scanFolder(snapshotDir(ctx, commit), join(ctx.storage, '.no_exist', commit), spec, lenient);
}

/**
 * Which of the spec's files a folder has. With `noExistDir`, a file marked there is known to be
 * absent. Strict (`lenient` false): an optional file or better weight that is neither present
 * nor marked absent is `unknown` (the Hub must be asked). Lenient: such files are skipped.
 */
export async function scanFolder(dir: string, noExistDir: string | undefined, spec: CheckpointFiles, lenient: boolean): Promise<FolderScan> {
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
export async function readShardNames(indexPath: string, name: string): Promise<string[]> {
  const bytes = await readRegularFile(indexPath, { kind: 'indexJson', what: 'a shard index' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
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
export async function writeRef(ctx: CacheRepo, commit: string): Promise<void> {
  if (ctx.revision === commit) return;
  const path = refPath(ctx);
  const old = await readRef(path).catch(() => undefined);
  if (old !== commit) await writeAtomic(path, commit);
}

export async function markAbsent(ctx: CacheRepo, commit: string, name: string): Promise<void> {
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
export async function linkIntoSnapshot(blob: string, pointer: string): Promise<void> {
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
