/**
 * The safetensors checkpoint in the browser: its header read by byte range, and for each graph
 * the tensors it uses packed into one buffer that onnxruntime-web takes as `externalData`. Packing
 * per graph (rather than handing every session the whole file) keeps each session's copy in the
 * WASM heap to the weights it needs, which is what lets a large checkpoint fit in wasm32's 4 GB.
 */
import { readSafetensorsHeader } from '../checkpoint/safetensors-header.js';
import type { TensorIndex, TensorInfo } from '../checkpoint/tensor-info.js';
import type { BuiltGraph } from '../graph/builder.js';
import type { ByteSource } from './byte-source.js';

export const WEIGHTS_FILE = 'model.safetensors';

/** Reads the header of a safetensors file; TensorInfo.file is `name` (the graphs' external-data location). */
export async function readSafetensorsIndex(source: ByteSource, name = WEIGHTS_FILE): Promise<TensorIndex> {
  return (await readSafetensorsHeader(source, name)).tensors;
}

export interface PackedWeights {
  /** The graph's tensors, renamed into `location` at their packed offsets. */
  index: TensorIndex;
  location: string;
  data: Uint8Array;
}

const ALIGN = 64;

/**
 * Where each tensor goes in a packed buffer named `location`: one after another, each starting
 * 64-byte aligned (onnxruntime-web views them as typed arrays in place). Returns the index and size.
 */
export function packedLayout(location: string, tensors: Iterable<Pick<TensorInfo, 'name' | 'dtype' | 'shape' | 'length'>>): { index: TensorIndex; size: number } {
  const index: TensorIndex = new Map();
  let size = 0;
  for (const t of tensors) {
    index.set(t.name, { name: t.name, dtype: t.dtype, shape: t.shape, length: t.length, file: location, offset: size });
    size = Math.ceil((size + t.length) / ALIGN) * ALIGN;
  }
  return { index, size };
}

/**
 * Copies the tensors `graph` references out of `source` into one buffer. `graph` is a first build
 * against the file's own index; the caller rebuilds it against `index` so its external data points
 * into the packed buffer.
 */
export async function packGraphWeights(graph: BuiltGraph, tensors: TensorIndex, source: ByteSource): Promise<PackedWeights> {
  const location = `${graph.name}.weights`;
  const used = [...new Set(graph.externalTensors.map((t) => t.name))].map((name) => tensors.get(name)!);
  const { index, size } = packedLayout(location, used);
  const data = new Uint8Array(size);
  // Neighbouring tensors are read in one range, so a checkpoint costs a few dozen reads, not hundreds.
  const sorted = [...used].sort((a, b) => a.offset - b.offset);
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1].offset - (sorted[j].offset + sorted[j].length) <= 4096
      && sorted[j + 1].offset + sorted[j + 1].length - sorted[i].offset <= 64 << 20) j++;
    const start = sorted[i].offset;
    const bytes = await source.read(start, sorted[j].offset + sorted[j].length - start);
    for (let k = i; k <= j; k++) {
      const t = sorted[k];
      data.set(bytes.subarray(t.offset - start, t.offset - start + t.length), index.get(t.name)!.offset);
    }
    i = j + 1;
  }
  return { index, location, data };
}
