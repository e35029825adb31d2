import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, realpath, stat } from 'node:fs/promises';
import { BlipError } from '../errors.js';

/**
 * The one place where blip-itm opens a file a user named (directly, through a config, an
 * annotation list, a dataset row or a request). Every read goes through here so that the CLI,
 * the service and the filter refuse the same things with the same words:
 *
 * - only regular files, after resolving links: a FIFO, socket or device would block forever or
 *   never end (`/dev/zero`), a folder fails with a bare EISDIR;
 * - a byte cap fitting the kind of file, checked from the file's size before reading and again
 *   while reading (a file that grows under us is cut off, not read until memory runs out);
 * - one-line messages that name the file and say what was expected.
 *
 * Opening with O_NONBLOCK means that even a FIFO swapped in between the check and the open cannot
 * block the open itself; fstat on the open descriptor then decides.
 */

/** Byte caps by kind of file. Each is far above any real file of that kind. */
export const FILE_LIMITS = {
  /**
   * An encoded image. The decoder refuses more than PIL's 89,478,485 pixels; at 8 bytes a pixel
   * (16-bit RGBA, uncompressed TIFF) that is about 716 MB, so nothing decodable is larger.
   */
  image: 89_478_485 * 8 + (1 << 20),
  /** config.json, preprocessor_config.json, tokenizer_config.json, special_tokens_map.json, added_tokens.json. */
  configJson: 16 << 20,
  /** vocab.txt (BERT's is 232 KB) and tokenizer.json (about 700 KB). */
  tokenizerFile: 64 << 20,
  /** A caption list (one caption per line) or an image list file. */
  textList: 256 << 20,
  /** An annotation file (a Karpathy split; COCO's train split is about 100 MB). */
  annotations: 1 << 30,
  /** A safetensors index or other small JSON the checkpoint loader reads. */
  indexJson: 64 << 20,
  /** An API key file. */
  secret: 64 << 10,
} as const;

export type FileKind = keyof typeof FILE_LIMITS;

/** A file that cannot be used; `message` is one line naming the file. */
export class FileError extends BlipError {
  constructor(readonly file: string, readonly problem: string, options?: { cause?: unknown }) {
    super(`${oneLine(file)}: ${problem}`, { subject: file, cause: options?.cause });
    this.name = 'FileError';
  }
}

/** Names a path on one line: control characters (a newline in a file name) are escaped. */
export function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text) ? JSON.stringify(text) : text;
}

/** Human size for messages: "20 MB", "716 MB", "64 KB". */
export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${+(n / (1 << 30)).toFixed(1)} GB`;
  if (n >= 1 << 20) return `${+(n / (1 << 20)).toFixed(1)} MB`;
  if (n >= 1 << 10) return `${+(n / (1 << 10)).toFixed(1)} KB`;
  return `${n} bytes`;
}

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

function describeErrno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  switch (code) {
    case 'ENOENT': return 'file not found';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'ELOOP': return 'too many symbolic links (a link loop?)';
    case 'ENAMETOOLONG': return 'path too long';
    case 'ENOTDIR': return 'a component of the path is not a folder';
    case 'EISDIR': return 'is a folder, expected a file';
    default: return `cannot read (${code ?? (e as Error)?.message ?? String(e)})`;
  }
}

export interface RegularFile {
  /** The path as given. */
  path: string;
  /** Size in bytes at the time of the check. */
  size: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
}

/**
 * Checks that `path` names a regular file (following links) of at most `maxBytes`; `what` says
 * what the file is for, e.g. "caption file", and appears in the message.
 */
export async function statRegularFile(path: string, options: { maxBytes?: number; what?: string } = {}): Promise<RegularFile> {
  if (typeof path !== 'string' || path === '') throw new FileError('<empty path>', `expected a path to ${options.what ?? 'a file'}`);
  if (path.includes('\0')) throw new FileError(path, 'the path contains a NUL byte');
  let s: Stats;
  try {
    s = await stat(path);
  } catch (e) {
    throw new FileError(path, describeErrno(e), { cause: e });
  }
  checkStats(path, s, options);
  return { path, size: s.size, mtimeMs: s.mtimeMs };
}

function checkStats(path: string, s: Stats, options: { maxBytes?: number; what?: string }): void {
  const what = options.what ?? 'a file';
  if (!s.isFile()) throw new FileError(path, `${kindOf(s)}, expected ${what} (a regular file)`);
  if (options.maxBytes !== undefined && s.size > options.maxBytes) {
    throw new FileError(path, `${formatBytes(s.size)} is over the ${formatBytes(options.maxBytes)} limit for ${what}`);
  }
}

export interface ReadOptions {
  /** Byte cap; default: the cap of `kind`. */
  maxBytes?: number;
  /** What kind of file this is; sets the default cap. */
  kind?: FileKind;
  /** What the file is for, in messages ("caption file", "config.json"). */
  what?: string;
}

function capOf(options: ReadOptions): number {
  const cap = options.maxBytes ?? (options.kind ? FILE_LIMITS[options.kind] : undefined);
  if (cap === undefined) throw new Error('readRegularFile needs maxBytes or kind');
  return cap;
}

/**
 * Reads a whole regular file of at most the cap. The size is checked before reading and the read
 * stops one byte past the cap, so a file that grows meanwhile is refused rather than read on.
 */
export async function readRegularFile(path: string, options: ReadOptions): Promise<Buffer> {
  const cap = capOf(options);
  const what = options.what ?? (options.kind ? `${options.kind} file` : 'a file');
  const { handle: fh, size } = await openRegularFile(path, { maxBytes: cap, what });
  try {
    // Read in chunks up to cap + 1: the size from stat is a hint, the read is the truth.
    const chunks: Buffer[] = [];
    let total = 0;
    const chunkSize = Math.min(Math.max(size, 1 << 16), 1 << 24);
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(chunkSize, cap + 1 - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > cap) throw new FileError(path, `grew past the ${formatBytes(cap)} limit for ${what} while being read`);
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
  } catch (e) {
    if (e instanceof FileError) throw e;
    throw new FileError(path, describeErrno(e), { cause: e });
  } finally {
    await fh.close();
  }
}

/**
 * Opens a regular file for reading parts of it (a checkpoint's weights: only the header is read
 * here, the tensor bytes stay on disk). Same checks as {@link readRegularFile}: the open cannot
 * block on a FIFO, and the descriptor must be a regular file of at most `maxBytes` when given.
 * The caller closes the handle.
 */
export async function openRegularFile(path: string, options: { maxBytes?: number; what?: string } = {}): Promise<{ handle: FileHandle; size: number }> {
  const what = options.what ?? 'a file';
  if (typeof path !== 'string' || path === '') throw new FileError('<empty path>', `expected a path to ${what}`);
  if (path.includes('\0')) throw new FileError(path, 'the path contains a NUL byte');
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new FileError(path, describeErrno(e), { cause: e });
  }
  try {
    const s = await handle.stat();
    checkStats(path, s, { maxBytes: options.maxBytes, what });
    return { handle, size: s.size };
  } catch (e) {
    await handle.close();
    if (e instanceof FileError) throw e;
    throw new FileError(path, describeErrno(e), { cause: e });
  }
}

/**
 * Runs `read`, turning a {@link FileError} into the error class a caller's API promises (e.g.
 * CheckpointError for checkpoint readers), with the same one-line problem.
 */
export async function rethrowFileErrorAs<T>(read: () => Promise<T>, as: (file: string, problem: string, cause: FileError) => Error): Promise<T> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof FileError) throw as(e.file, e.problem, e);
    throw e;
  }
}

/** Reads a regular file as UTF-8 text (see {@link readRegularFile}). */
export async function readTextFile(path: string, options: ReadOptions): Promise<string> {
  return (await readRegularFile(path, options)).toString('utf8');
}

/**
 * Reads a file that must be plain UTF-8 text (a caption or path list): invalid UTF-8 or a NUL byte
 * means a binary file given by mistake, which would otherwise turn into nonsense captions.
 */
export async function readPlainTextFile(path: string, options: ReadOptions): Promise<string> {
  return decodePlainText(await readRegularFile(path, options), path, options.what ?? 'a text file');
}

/** {@link readPlainTextFile}'s check, for bytes read elsewhere (stdin); `name` is used in messages. */
export function decodePlainText(bytes: Uint8Array, name: string, what: string): string {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (e) {
    throw new FileError(name, `not valid UTF-8 text, expected ${what}`, { cause: e });
  }
  const nul = text.indexOf('\0');
  if (nul >= 0) throw new FileError(name, `holds a NUL byte (at character ${nul}), expected ${what} (plain text)`);
  return text;
}

/**
 * Reads and parses a JSON file; a syntax error becomes one line naming the file, without echoing
 * the file's bytes.
 */
export async function readJsonFile(path: string, options: ReadOptions): Promise<unknown> {
  const text = await readTextFile(path, options);
  try {
    return JSON.parse(text);
  } catch (e) {
    const detail = /position (\d+)/.exec((e as Error).message);
    throw new FileError(path, `not valid JSON${detail ? ` (syntax error at byte ${detail[1]})` : ''}`, { cause: e });
  }
}

/**
 * Resolves `relative` under `root` and refuses a result outside it (`..`, an absolute path, or a
 * link pointing out), as annotation and dataset paths must stay inside their root.
 */
export async function resolveInside(root: string, relative: string, what = 'path'): Promise<string> {
  const { resolve, sep } = await import('node:path');
  if (typeof relative !== 'string' || relative === '') throw new FileError('<empty path>', `expected a ${what} under ${oneLine(root)}`);
  if (relative.includes('\0')) throw new FileError(relative, 'the path contains a NUL byte');
  const rootAbs = resolve(root);
  const joined = resolve(rootAbs, relative);
  const inside = (p: string, r: string) => p === r || p.startsWith(r.endsWith(sep) ? r : r + sep);
  if (!inside(joined, rootAbs)) throw new FileError(relative, `${what} escapes the root folder ${oneLine(root)}`);
  // Links may still point out: compare real paths where the file exists.
  try {
    const [realRoot, realFile] = await Promise.all([realpath(rootAbs), realpath(joined)]);
    if (!inside(realFile, realRoot)) throw new FileError(relative, `${what} links outside the root folder ${oneLine(root)}`);
  } catch (e) {
    if (e instanceof FileError) throw e;
    // A missing file is reported by whoever reads it.
  }
  return joined;
}
