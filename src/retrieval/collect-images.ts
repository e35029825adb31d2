import { readdir, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { BlipError } from '../errors.js';
import { FileError, readPlainTextFile } from '../io/files.js';

/** File extensions (lower case) taken from a folder walk. */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif'] as const;

const EXTENSIONS = new Set<string>(IMAGE_EXTENSIONS);

export function hasImageExtension(path: string): boolean {
  return EXTENSIONS.has(extname(path).toLowerCase());
}

/**
 * The images one `index` run covers, and which stored images it may remove:
 * - `folder`: every file with an image extension under `root` (recursively); stored paths under
 *   `root` that the walk no longer finds are removed, paths elsewhere are left alone.
 * - `list`: the paths listed in a file; the index then mirrors the list, so stored paths that are not
 *   listed are removed.
 * - `files`: images named one by one (a single image path given to `index`); nothing is removed.
 */
export type ImageScope = { kind: 'folder'; root: string } | { kind: 'list'; file: string } | { kind: 'files' };

export interface CollectedImages {
  scope: ImageScope;
  /** Absolute paths, sorted, without duplicates. A list may name files that do not exist. */
  files: string[];
}

/** Whether a stored `path` belongs to `scope` (may be removed when the run does not see it). */
export function inScope(scope: ImageScope, path: string): boolean {
  if (scope.kind === 'list') return true;
  if (scope.kind === 'files') return false;
  const root = scope.root.endsWith(sep) ? scope.root : `${scope.root}${sep}`;
  return path.startsWith(root);
}

/**
 * A folder (walked recursively for {@link IMAGE_EXTENSIONS}, case-insensitive; symbolic links to
 * files are followed, links to folders are not), a list file (one path per line; blank lines and
 * lines starting with `#` are skipped; relative paths are relative to the list file's folder), or a
 * single image file.
 */
export async function collectImages(target: string): Promise<CollectedImages> {
  const abs = resolve(target);
  let st;
  try {
    st = await stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BlipError(`${target}: ${code === 'ENOENT' ? 'no such folder or list file' : `cannot read (${code})`}`, { subject: target, cause: e });
  }
  if (st.isDirectory()) {
    const files = await walk(abs);
    return { scope: { kind: 'folder', root: abs }, files: [...new Set(files)].sort() };
  }
  if (hasImageExtension(abs)) return { scope: { kind: 'files' }, files: [abs] };
  const text = await readPlainTextFile(abs, { kind: 'textList', what: 'a list file of image paths' }).catch((e: unknown) => {
    // A binary file that is not an image: say what `index` takes.
    if (e instanceof FileError && /UTF-8|NUL/.test(e.problem)) throw new BlipError(`${target} is neither a folder, an image, nor a text file listing image paths`, { subject: target });
    throw e;
  });
  const base = dirname(abs);
  const files = text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => resolve(base, line));
  return { scope: { kind: 'list', file: abs }, files: [...new Set(files)].sort() };
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const pending = [dir];
  while (pending.length > 0) {
    const current = pending.pop()!;
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch (e) {
      // The root itself must be readable; an unreadable subfolder is skipped like `find` does.
      if (current === dir) throw new BlipError(`${dir}: cannot read folder (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { subject: dir, cause: e });
      continue;
    }
    for (const entry of entries) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) pending.push(path);
      else if (hasImageExtension(entry.name)) {
        if (entry.isFile()) out.push(path);
        else if (entry.isSymbolicLink()) {
          const target = await stat(path).catch(() => undefined);
          // A dangling link is listed, so the run reports it as unreadable.
          if (!target || target.isFile()) out.push(path);
        }
      }
    }
  }
  return out;
}
