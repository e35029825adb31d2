import { realpathSync } from 'node:fs';
import type { BlipConfig } from '../checkpoint/blip-config.js';
import { type DerivedWeights, PlanningIndex, prepareDerivedWeights } from '../checkpoint/derived-weights.js';
import type { Dtype } from '../checkpoint/dtype.js';
import type { TensorIndex } from '../checkpoint/tensor-info.js';
import { buildCrossKVGraph, buildTextGraph, buildVisionGraph, type GraphPrecision } from './blip-graphs.js';
import type { BuiltGraph } from './builder.js';

export interface BlipGraphs {
  vision: BuiltGraph;
  text: BuiltGraph;
  crossKV: BuiltGraph;
}

function build(config: BlipConfig, tensors: TensorIndex, label: string, precision: GraphPrecision): BlipGraphs {
  return {
    vision: buildVisionGraph(config, tensors, label, precision),
    text: buildTextGraph(config, tensors, label, precision),
    crossKV: buildCrossKVGraph(config, tensors, label, precision),
  };
}

/**
 * The three BLIP graphs in `dtype`. fp32 reads the checkpoint in place. fp16 and int8 build the
 * graphs once against a planning index to learn which converted tensors they use, have those
 * derived (or found in the cache, or read in place when the checkpoint already holds them), and
 * build again against the result. Graph building takes milliseconds; the conversion runs once per
 * checkpoint and dtype.
 */
export async function buildBlipGraphs(
  config: BlipConfig,
  weights: { tensors: TensorIndex; file: string },
  dtype: Dtype,
  options: { cacheDir?: string; activations?: 'fp16' | 'fp32'; matmulLinears?: boolean } = {},
): Promise<{ graphs: BlipGraphs; derived?: DerivedWeights }> {
  const precision: GraphPrecision = { dtype, activations: options.activations, matmulLinears: options.matmulLinears, realPath: realpathSync };
  if (dtype === 'fp32') return { graphs: build(config, weights.tensors, weights.file, precision) };
  const plan = new PlanningIndex(weights.tensors);
  build(config, plan, weights.file, precision);
  const files = new Set<string>();
  for (const t of weights.tensors.values()) files.add(t.file);
  const derived = await prepareDerivedWeights(plan, { dtype, cacheDir: options.cacheDir, checkpointFiles: files.size > 0 ? [...files] : [weights.file] });
  // The checkpoint's own names stay visible: the builder picks a derived kind by the source dtype.
  const index = new Map([...weights.tensors, ...derived.tensors]);
  return { graphs: build(config, index, derived.file ?? weights.file, precision), derived };
}
