import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BlipError, CheckpointError } from '../errors.js';
import type { Dtype } from './dtype.js';
import { fingerprintWeights } from './fingerprint.js';
import { bfloat16ToFloats, floatsToHalf, halfToFloats } from './half.js';
import { readSafetensors } from './safetensors.js';
import { type TensorToWrite, writeSafetensors } from './safetensors-writer.js';
import { DTYPE_BYTES, type TensorDType, type TensorIndex, type TensorInfo } from './tensor-info.js';
import { type DerivedKind, derivedName } from './derived-names.js';

export { type DerivedKind, derivedName };

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

function parseDerivedName(name: string): { kind: DerivedKind; source: string } | undefined {
  const m = /^(f16|f32|q8t|q8s):(.+)$/.exec(name);
  return m ? { kind: m[1] as DerivedKind, source: m[2] } : undefined;
}

function derivedLayout(kind: DerivedKind, src: TensorInfo): { dtype: TensorDType; shape: number[] } {
  switch (kind) {
    case 'f16': return { dtype: 'F16', shape: src.shape };
    case 'f32': return { dtype: 'F32', shape: src.shape };
    case 'q8t':
    case 'q8s':
      if (src.shape.length !== 2) throw new CheckpointError(src.file, `weight "${src.name}" has shape [${src.shape}]; only 2-D linear weights can be quantized`);
      return kind === 'q8t' ? { dtype: 'I8', shape: [src.shape[1], src.shape[0]] } : { dtype: 'F32', shape: [src.shape[0]] };
  }
}

export interface DerivedRequest {
  name: string;
  kind: DerivedKind;
  source: TensorInfo;
  dtype: TensorDType;
  shape: number[];
}

/**
 * A tensor index that serves derived names with placeholders pointing into the checkpoint file
 * (so the graph builder's checks pass) and records what was asked for. Plain names pass through.
 */
export class PlanningIndex extends Map<string, TensorInfo> {
  readonly requests = new Map<string, DerivedRequest>();

  constructor(private readonly checkpoint: TensorIndex) {
    super();
  }

  override get(name: string): TensorInfo | undefined {
    const derived = parseDerivedName(name);
    if (!derived) return this.checkpoint.get(name);
    const source = this.checkpoint.get(derived.source);
    if (!source) return undefined;
    const layout = derivedLayout(derived.kind, source);
    this.requests.set(name, { name, kind: derived.kind, source, ...layout });
    const length = layout.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[layout.dtype];
    return { name, ...layout, file: source.file, offset: 0, length };
  }
}

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

/** A request the checkpoint serves as it is: same element type, same layout. */
function inPlace(r: DerivedRequest): boolean {
  return (r.kind === 'f16' && r.source.dtype === 'F16') || (r.kind === 'f32' && r.source.dtype === 'F32');
}

export async function prepareDerivedWeights(
  plan: PlanningIndex,
  options: { dtype: Dtype; cacheDir?: string; checkpointFiles: string[] },
): Promise<DerivedWeights> {
  const requests = [...plan.requests.values()];
  if (requests.every(inPlace)) {
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
  const n = t.shape.reduce((a, b) => a * b, 1);
  switch (t.dtype) {
    case 'F32': return new Float32Array(raw.buffer, 0, n);
    case 'F16': return halfToFloats(new Uint16Array(raw.buffer, 0, n));
    case 'BF16': return bfloat16ToFloats(new Uint16Array(raw.buffer, 0, n));
    case 'F64': return Float32Array.from(new Float64Array(raw.buffer, 0, n));
    default: throw new CheckpointError(t.file, `weight "${t.name}" has dtype ${t.dtype}; expected a floating-point type`);
  }
}

async function deriveBytes(r: DerivedRequest, scales: Map<string, Float32Array>): Promise<Uint8Array> {
  const w = await readAsFloat32(r.source);
  switch (r.kind) {
    case 'f32': return new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
    case 'f16': {
      const h = floatsToHalf(w);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case 'q8s': {
      const s = rowScales(w, r.source.shape[0], r.source.shape[1]);
      scales.set(r.source.name, s);
      return new Uint8Array(s.buffer);
    }
    case 'q8t': {
      const [rowsOut, cols] = r.source.shape;
      const s = scales.get(r.source.name) ?? rowScales(w, rowsOut, cols);
      const q = quantizeTransposed(w, rowsOut, cols, s);
      return new Uint8Array(q.buffer);
    }
  }
}

/** Symmetric per-output-row scales: max |w| / 127 (1 for an all-zero row, so zeros stay zeros). */
export function rowScales(w: Float32Array, rows: number, cols: number): Float32Array {
  const s = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let c = 0, o = r * cols; c < cols; c++) {
      const a = Math.abs(w[o + c]);
      if (a > m) m = a;
    }
    s[r] = m > 0 ? m / 127 : 1;
  }
  return s;
}

/** int8 of w [rows, cols] / scale[row], rounded to nearest (ties away from zero), as [cols, rows]. */
export function quantizeTransposed(w: Float32Array, rows: number, cols: number, scales: Float32Array): Int8Array {
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const inv = 1 / scales[r];
    for (let c = 0, o = r * cols; c < cols; c++) {
      const v = Math.round(Math.abs(w[o + c]) * inv);
      q[c * rows + r] = (w[o + c] < 0 ? -1 : 1) * (v > 127 ? 127 : v);
    }
  }
  return q;
}
