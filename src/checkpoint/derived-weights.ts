import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BlipError, CheckpointError } from '../errors.js';
import type { Dtype } from './dtype.js';
import { fingerprintWeights } from './fingerprint.js';
import { readSafetensors } from './safetensors.js';
import { type TensorToWrite, writeSafetensors } from './safetensors-writer.js';
import { DTYPE_BYTES, type TensorIndex, type TensorInfo } from './tensor-info.js';
import { type DerivedKind, derivedName } from './derived-names.js';
import { type DerivedRequest, deriveTensorBytes, PlanningIndex, quantizeTransposed, rowScales, servedInPlace, tensorBytesToFloat32 } from './derived-tensors.js';

export { type DerivedKind, derivedName, type DerivedRequest, PlanningIndex, quantizeTransposed, rowScales };

/**
 * Weights in another precision than the checkpoint's, derived once from it.
 *
 * Graphs ask for a derived tensor by name, `<kind>:<checkpoint tensor>`:
 * - `f16:` the tensor as float16, same shape;
 * - `f32:` the tensor as float32, same shape;
 * - `q8t:` a linear's `[out, in]` weight quantized to int8, symmetric, one scale per output row,
 *   stored transposed as `[in, out]` (the B operand of DynamicQuantizeMatMul);
 * - `q8s:` those scales, float32 `[out]`.
 *
 * The graphs are first built against a {@link PlanningIndex}, which answers every request with a
 * placeholder and records it; {@link prepareDerivedWeights} then writes exactly the requested
 * tensors into one safetensors file in the user's cache (atomically, one tensor in memory at a time),
 * keyed by the checkpoint's weights fingerprint, and the graphs are built again against it. When
 * every request is already satisfied by the checkpoint (an fp16 checkpoint loaded as fp16) nothing
 * is written and the checkpoint is read in place.
 */

/** Bump when the derived bytes change meaning; older cache files are then ignored. */
const DERIVED_FORMAT = 1;

export function defaultWeightsCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'blip-itm', 'weights');
}

export interface DerivedWeights {
  tensors: TensorIndex;
  /** The cache file, or undefined when the checkpoint is read in place. */
  file: string | undefined;
  /** Whether this call wrote the cache file (false: reused, or read in place). */
  written: boolean;
  /** Seconds spent converting and writing (0 when nothing was written). */
  seconds: number;
}

export async function prepareDerivedWeights(
  plan: PlanningIndex,
  options: { dtype: Dtype; cacheDir?: string; checkpointFiles: string[] },
): Promise<DerivedWeights> {
  const requests = [...plan.requests.values()];
  if (requests.every(servedInPlace)) {
    const tensors: TensorIndex = new Map();
    for (const r of requests) tensors.set(r.name, r.source);
    return { tensors, file: undefined, written: false, seconds: 0 };
  }
  const { fingerprint } = await fingerprintWeights(options.checkpointFiles);
  const planHash = createHash('sha256').update(`blip-itm derived weights ${DERIVED_FORMAT}\n`);
  for (const r of [...requests].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    planHash.update(`${r.name} ${r.source.dtype} [${r.source.shape}]\n`);
  }
  const dir = options.cacheDir ?? defaultWeightsCacheDir();
  const file = join(dir, `${fingerprint.replace(/^.*:/, '').slice(0, 32)}-${options.dtype}-${planHash.digest('hex').slice(0, 12)}.safetensors`);

  if (existsSync(file)) {
    const cached = await readCached(file, requests);
    if (cached) return { tensors: cached, file, written: false, seconds: 0 };
  }
  const t0 = performance.now();
  // Wider types first, so every tensor starts aligned to its element size (see writeSafetensors).
  const ordered = [...requests].sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype] || (a.name < b.name ? -1 : 1));
  const scales = new Map<string, Float32Array>();
  const entries: TensorToWrite[] = ordered.map((r) => ({
    name: r.name, dtype: r.dtype, shape: r.shape, bytes: () => deriveBytes(r, scales),
  }));
  try {
    await writeSafetensors(file, entries, { format: `blip-itm-derived-${DERIVED_FORMAT}`, dtype: options.dtype, source: fingerprint });
  } catch (e) {
    if (e instanceof BlipError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new BlipError(
      `${dir}: cannot write the ${options.dtype} weights cache (${code ?? (e as Error).message}); set XDG_CACHE_HOME to a writable folder or use --dtype fp32`,
      { subject: dir, cause: e },
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  const tensors = await readCached(file, requests);
  if (!tensors) throw new CheckpointError(file, 'the weights cache just written does not hold the requested tensors');
  return { tensors, file, written: true, seconds };
}

/** The cache file's index if it holds every request with the right type and shape, else undefined. */
async function readCached(file: string, requests: DerivedRequest[]): Promise<TensorIndex | undefined> {
  let st;
  try {
    st = await readSafetensors(file);
  } catch {
    return undefined; // damaged: written again
  }
  for (const r of requests) {
    const t = st.tensors.get(r.name);
    if (!t || t.dtype !== r.dtype || t.shape.length !== r.shape.length || t.shape.some((d, i) => d !== r.shape[i])) return undefined;
  }
  return st.tensors;
}

/** The checkpoint tensor's elements as float32. */
export async function readAsFloat32(t: TensorInfo): Promise<Float32Array> {
  const raw = new Uint8Array(t.length);
  const fh = await open(t.file, 'r');
  try {
    let got = 0;
    while (got < t.length) {
      const { bytesRead } = await fh.read(raw, got, t.length - got, t.offset + got);
      if (bytesRead === 0) throw new CheckpointError(t.file, `weight "${t.name}" runs past the end of the file`);
      got += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return tensorBytesToFloat32(raw, t);
}

async function deriveBytes(r: DerivedRequest, scales: Map<string, Float32Array>): Promise<Uint8Array> {
  return deriveTensorBytes(r, await readAsFloat32(r.source), scales);
}
