/**
 * fp16 and int8 weights in the browser, derived in memory from the fetched checkpoint: the graph
 * is built against a PlanningIndex to learn which converted tensors it uses, each source tensor
 * is read by byte range, converted with the same functions Node uses for its weights cache
 * (checkpoint/derived-tensors.ts) and written into one packed buffer, and the graph is built again
 * against that buffer, which onnxruntime-web takes as `externalData`. Only one source tensor is
 * held as float32 at a time; the packed buffer holds the converted graph's weights only.
 */
import { type DerivedRequest, derivedLength, deriveTensorBytes, PlanningIndex, tensorBytesToFloat32 } from '../checkpoint/derived-tensors.js';
import type { TensorIndex } from '../checkpoint/tensor-info.js';
import type { BuiltGraph } from '../graph/builder.js';
import type { ByteSource } from './byte-source.js';
import { type PackedWeights, packedLayout } from './weights.js';

/**
 * Builds a graph whose weights are derived tensors (`build` is called twice: against the plan,
 * then against the packed buffer) and returns it with that buffer.
 */
export async function buildWithDerivedWeights(
  build: (tensors: TensorIndex) => BuiltGraph,
  tensors: TensorIndex,
  source: ByteSource,
): Promise<{ graph: BuiltGraph; weights: PackedWeights }> {
  const plan = new PlanningIndex(tensors);
  const planned = build(plan);
  const weights = await packDerivedWeights(`${planned.name}.weights`, [...plan.requests.values()], source);
  return { graph: build(weights.index), weights };
}

/** Converts `requests` into one buffer; their source tensors are read once each, in file order. */
export async function packDerivedWeights(location: string, requests: DerivedRequest[], source: ByteSource): Promise<PackedWeights> {
  const { index, size } = packedLayout(location, requests.map((r) => ({ name: r.name, dtype: r.dtype, shape: r.shape, length: derivedLength(r) })));
  const data = new Uint8Array(size);
  const bySource = new Map<string, DerivedRequest[]>();
  for (const r of requests) bySource.set(r.source.name, [...(bySource.get(r.source.name) ?? []), r]);
  const ordered = [...bySource.values()].sort((a, b) => a[0].source.offset - b[0].source.offset);
  for (const group of ordered) {
    const t = group[0].source;
    const raw = await source.read(t.offset, t.length);
    // Viewed as float32/float16 in place, which needs an aligned start (a fresh read has one).
    const w = tensorBytesToFloat32(raw.byteOffset % 8 === 0 ? raw : raw.slice(), t);
    const scales = new Map<string, Float32Array>();
    for (const r of group) data.set(deriveTensorBytes(r, w, scales), index.get(r.name)!.offset);
  }
  return { index, location, data };
}
