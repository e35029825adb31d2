/**
 * The pure half of derived weights (see derived-weights.ts): which converted tensors a graph asks
 * for ({@link PlanningIndex}), their layout, and the conversions themselves on in-memory arrays.
 * No file or platform access here, so the browser build (src/web/derived-weights.ts) derives the
 * same bytes from fetched checkpoint ranges as Node writes into its weights cache.
 */
import { CheckpointError } from '../errors.js';
import type { DerivedKind } from './derived-names.js';
import { bfloat16ToFloats, floatsToHalf, halfToFloats } from './half.js';
import { DTYPE_BYTES, type TensorDType, type TensorIndex, type TensorInfo } from './tensor-info.js';

export function parseDerivedName(name: string): { kind: DerivedKind; source: string } | undefined {
  const m = /^(f16|f32|q8t|q8s):(.+)$/.exec(name);
  return m ? { kind: m[1] as DerivedKind, source: m[2] } : undefined;
}

export function derivedLayout(kind: DerivedKind, src: TensorInfo): { dtype: TensorDType; shape: number[] } {
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

/** Byte length of a derived tensor. */
export const derivedLength = (r: Pick<DerivedRequest, 'dtype' | 'shape'>): number => r.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[r.dtype];

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
    return { name, ...layout, file: source.file, offset: 0, length: derivedLength(layout) };
  }
}

/** A request the checkpoint serves as it is: same element type, same layout. */
export function servedInPlace(r: DerivedRequest): boolean {
  return (r.kind === 'f16' && r.source.dtype === 'F16') || (r.kind === 'f32' && r.source.dtype === 'F32');
}

/**
 * The raw little-endian bytes of checkpoint tensor `t` as float32 elements. `raw` must start at a
 * 4-byte-aligned offset of its buffer (a fresh read is); F32 input is viewed, not copied.
 */
export function tensorBytesToFloat32(raw: Uint8Array, t: TensorInfo): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  switch (t.dtype) {
    case 'F32': return new Float32Array(raw.buffer, raw.byteOffset, n);
    case 'F16': return halfToFloats(new Uint16Array(raw.buffer, raw.byteOffset, n));
    case 'BF16': return bfloat16ToFloats(new Uint16Array(raw.buffer, raw.byteOffset, n));
    case 'F64': return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, n));
    default: throw new CheckpointError(t.file, `weight "${t.name}" has dtype ${t.dtype}; expected a floating-point type`);
  }
}

/**
 * The bytes of derived tensor `r` from its source's elements `w`. `scales` carries a q8 weight's
 * row scales from its `q8s:` request to its `q8t:` one (or back), so they are computed once.
 */
export function deriveTensorBytes(r: DerivedRequest, w: Float32Array, scales: Map<string, Float32Array>): Uint8Array {
  switch (r.kind) {
    case 'f32': return new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
    case 'f16': {
      const h = floatsToHalf(w);
      return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
    }
    case 'q8s': {
      const s = scales.get(r.source.name) ?? rowScales(w, r.source.shape[0], r.source.shape[1]);
      scales.set(r.source.name, s);
      return new Uint8Array(s.buffer, s.byteOffset, s.byteLength);
    }
    case 'q8t': {
      const [rowsOut, cols] = r.source.shape;
      const s = scales.get(r.source.name) ?? rowScales(w, rowsOut, cols);
      scales.set(r.source.name, s);
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
