import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BlipError } from '../errors.js';
import { FileError, readRegularFile } from '../io/files.js';
import type { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import type { Tensor } from '../tensor.js';
import { fingerprintWeights } from './model-identity.js';

/**
 * A content-addressed store of float32 tensors on disk, for the retrieval evaluation's
 * encodings (image states and features, text features, ITM logits).
 *
 * Layout: `<dir>/<model key>/<kind>/<key>.bin`, plus `<dir>/<model key>/model.json` saying which
 * checkpoint the folder belongs to. Every key is a sha256 of everything the stored value depends
 * on (the model key, and the image file's bytes or the token ids), so an entry can never be used
 * for other inputs, and entries are shared between runs, splits and `k_test` values.
 *
 * Files are written to a temporary name in the same folder, flushed to disk and renamed into
 * place, so a crash leaves either the whole file or none. On reading, the magic, the header, the
 * exact length and a sha256 of the payload are checked; a file that fails any check (truncated,
 * zero-filled after a crash, written by something else) counts as missing and is written again.
 *
 * File format: 8 bytes `BLIPEC01`, uint32 LE header length, JSON header
 * `{ "tensors": [{ "name", "dims" }], "sha256": <payload hex> }`, payload: the tensors' float32
 * little-endian data, in header order.
 */

const MAGIC = Buffer.from('BLIPEC01', 'latin1');
/** Largest entry read back: ViT-L states at 384 px are 2.4 MB an image; 1 GB leaves room for any real model. */
const MAX_ENTRY_BYTES = 1 << 30;
/** Bump when what is stored under a key changes meaning. */
export const CACHE_FORMAT = 1;

export type TensorRecord = Record<string, Tensor>;

/** Where `get`/`put` keep their entries; `EncodingCache` (disk) or `MemoryTensorStore`. */
export interface TensorStore {
  get(kind: string, key: string): Promise<TensorRecord | undefined>;
  put(kind: string, key: string, tensors: TensorRecord): Promise<void>;
  /** Whether an entry looks present (cheap; `get` does the full check). */
  has(kind: string, key: string): Promise<boolean>;
}

/** The default cache folder: `$XDG_CACHE_HOME/blip-itm/eval`, else `~/.cache/blip-itm/eval`. */
export function defaultEvalCacheDir(): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'blip-itm', 'eval');
}

export function sha256Hex(...parts: Array<string | Uint8Array | ArrayBufferView>): string {
  const h = createHash('sha256');
  for (const p of parts) {
    if (typeof p === 'string') h.update(`${p.length}:${p}`);
    else {
      const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
      h.update(`${bytes.length}#`);
      h.update(bytes);
    }
  }
  return h.digest('hex');
}

/**
 * Identity of a loaded model for cache keys: its `config.json` and `preprocessor_config.json`
 * bytes and the same sampled weights fingerprint the image index records (see
 * model-identity.ts), so a copied or re-downloaded checkpoint keeps its cache and replaced
 * weights never reuse it.
 */
export async function modelCacheKey(model: BlipForImageTextRetrieval): Promise<string> {
  const { weights } = model.source;
  const files = new Set([...weights.tensors.values()].map((t) => t.file));
  const { fingerprint } = await fingerprintWeights(files.size > 0 ? [...files] : [weights.file]);
  const config = await readRegularFile(join(model.source.dir, 'config.json'), { kind: 'configJson', what: 'config.json' });
  const preprocessor = await readRegularFile(join(model.source.dir, 'preprocessor_config.json'), { kind: 'configJson', what: 'preprocessor_config.json' });
  // fp32 keeps the key it had before dtypes existed, so existing caches stay valid (its graphs are
  // pinned byte for byte by test/precision-fp32-graphs.test.ts). fp16 and int8 also key on the graphs
  // themselves: fp16 computes differently on CPU (float32 arithmetic, mixed precision) than on GPU
  // providers (float16 end to end), and a graph change must not reuse features of the old one.
  const parts = model.dtype === 'fp32' ? [] : [`dtype ${model.dtype}`, model.graphs.vision.bytes, model.graphs.text.bytes, model.graphs.crossKV.bytes];
  return sha256Hex(`blip-itm eval cache ${CACHE_FORMAT}`, config, preprocessor, fingerprint, ...parts);
}

export class EncodingCache implements TensorStore {
  /** Entries written and entries rejected as damaged, for reports and tests. */
  written = 0;
  rejected = 0;

  private readonly root: string;

  /** `dir` is the cache root; entries go under `<dir>/<modelKey>/`. */
  constructor(dir: string, readonly modelKey: string) {
    this.root = join(resolve(dir), modelKey);
  }

  /** Creates the model folder and writes `model.json` (what the folder belongs to). */
  async init(description: Record<string, unknown>): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      await atomicWrite(join(this.root, 'model.json'), Buffer.from(`${JSON.stringify({ format: CACHE_FORMAT, ...description }, null, 2)}\n`));
    } catch (e) {
      throw new BlipError(`cannot write the evaluation cache in ${this.root}: ${(e as Error).message}`, { cause: e });
    }
  }

  get folder(): string {
    return this.root;
  }

  path(kind: string, key: string): string {
    if (!/^[a-z0-9-]+$/.test(kind) || !/^[0-9a-f]{16,128}$/.test(key)) throw new RangeError(`bad cache entry name ${kind}/${key}`);
    return join(this.root, kind, `${key}.bin`);
  }

  async has(kind: string, key: string): Promise<boolean> {
    try {
      return (await stat(this.path(kind, key))).isFile();
    } catch {
      return false;
    }
  }

  async get(kind: string, key: string): Promise<TensorRecord | undefined> {
    let bytes: Buffer | undefined;
    try {
      // Capped and regular files only: a FIFO or a huge file planted in the cache is not read.
      bytes = await readRegularFile(this.path(kind, key), { maxBytes: MAX_ENTRY_BYTES, what: 'an evaluation cache entry' });
    } catch (e) {
      if (!(e instanceof FileError)) throw e;
      if (e.problem === 'file not found') return undefined;
      if ((e.cause as NodeJS.ErrnoException | undefined)?.code !== undefined) {
        throw new BlipError(`cannot read the evaluation cache entry ${e.message}`, { cause: e });
      }
      // Not a regular file, or over the cap: damaged, as a bad checksum would be.
    }
    const decoded = bytes === undefined ? undefined : decodeEntry(bytes);
    if (decoded === undefined) {
      this.rejected++;
      // Damaged: remove it so that it is written again.
      // (recursive: a folder planted under an entry name goes too; links are removed, not followed.)
      await rm(this.path(kind, key), { force: true, recursive: true });
    }
    return decoded;
  }

  async put(kind: string, key: string, tensors: TensorRecord): Promise<void> {
    const file = this.path(kind, key);
    try {
      await mkdir(dirname(file), { recursive: true });
      await atomicWrite(file, encodeEntry(tensors));
    } catch (e) {
      throw new BlipError(`cannot write the evaluation cache entry ${file}: ${(e as Error).message}`, { cause: e });
    }
    this.written++;
  }
}

/** The same interface kept in memory (no `--cache`): nothing survives the process. */
export class MemoryTensorStore implements TensorStore {
  private readonly entries = new Map<string, TensorRecord>();
  async get(kind: string, key: string): Promise<TensorRecord | undefined> {
    return this.entries.get(`${kind}/${key}`);
  }
  async put(kind: string, key: string, tensors: TensorRecord): Promise<void> {
    this.entries.set(`${kind}/${key}`, tensors);
  }
  async has(kind: string, key: string): Promise<boolean> {
    return this.entries.has(`${kind}/${key}`);
  }
}

export function encodeEntry(tensors: TensorRecord): Buffer {
  const names = Object.keys(tensors);
  const payload = Buffer.concat(names.map((n) => {
    const t = tensors[n];
    if (!(t.data instanceof Float32Array)) throw new TypeError(`cache tensor ${n} must be float32`);
    if (t.data.length !== t.dims.reduce((a, b) => a * b, 1)) throw new RangeError(`cache tensor ${n}: data does not match dims [${t.dims.join(', ')}]`);
    return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  }));
  const header = Buffer.from(JSON.stringify({
    tensors: names.map((name) => ({ name, dims: tensors[name].dims })),
    sha256: createHash('sha256').update(payload).digest('hex'),
  }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(header.length);
  return Buffer.concat([MAGIC, len, header, payload]);
}

/** The tensors of an entry, or undefined when the bytes are not one complete, intact entry. */
export function decodeEntry(bytes: Buffer): TensorRecord | undefined {
  if (bytes.length < 12 || !bytes.subarray(0, 8).equals(MAGIC)) return undefined;
  const headerLength = bytes.readUInt32LE(8);
  if (12 + headerLength > bytes.length) return undefined;
  let header: { tensors: Array<{ name: string; dims: number[] }>; sha256: string };
  try {
    header = JSON.parse(bytes.subarray(12, 12 + headerLength).toString('utf8'));
  } catch {
    return undefined;
  }
  if (!header || !Array.isArray(header.tensors) || typeof header.sha256 !== 'string') return undefined;
  const payload = bytes.subarray(12 + headerLength);
  let size = 0;
  for (const t of header.tensors) {
    if (typeof t?.name !== 'string' || !Array.isArray(t.dims) || !t.dims.every((d) => Number.isInteger(d) && d >= 0)) return undefined;
    size += t.dims.reduce((a, b) => a * b, 1) * 4;
  }
  if (payload.length !== size) return undefined;
  if (createHash('sha256').update(payload).digest('hex') !== header.sha256) return undefined;
  // Copy into an aligned buffer (the payload offset need not be a multiple of 4).
  const floats = new Float32Array(size / 4);
  new Uint8Array(floats.buffer).set(payload);
  const out: TensorRecord = {};
  let offset = 0;
  for (const t of header.tensors) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    out[t.name] = { data: floats.subarray(offset, offset + n), dims: [...t.dims] };
    offset += n;
  }
  return out;
}

/** Writes `file` via a temporary file in the same folder, fsync and rename. */
export async function atomicWrite(file: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
