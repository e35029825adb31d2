import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { floatsToHalf } from '../src/checkpoint/half.js';
import { FloatAttr } from '../src/graph/onnx-proto.js';
import { DataType, encodeModel, type NodeProto, type TensorProto } from '../src/graph/onnx-proto.js';

/**
 * What widening fp16 weights per call costs one linear of the ViT-L MLP ([577, 1024] x [4096, 1024]^T,
 * FusedMatMul with transB as the CPU graphs run it), interleaved so machine load hits all alike:
 *   const  float32 weight, constant: onnxruntime pre-packs it at load (fp32's path)
 *   widen  float16 weight, Reshape gated on the input's batch size, Cast to float32 per call (fp16's CPU path)
 *   f16fold float16 weight, Cast folded at load (the earlier fp16 CPU path: fp32's memory)
 * Prints one JSON line: median seconds per run and GFLOP/s of each.
 *
 *   node --import tsx bench/widen-gemm.ts [runs]
 */
const runs = Number(process.argv[2] ?? 15);
const [M, K, N] = [577, 1024, 4096];
const w = new Float32Array(N * K);
for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1e5 - 0.005;
const f32: TensorProto = { name: 'w', dataType: DataType.FLOAT, dims: [N, K], raw: new Uint8Array(w.buffer) };
const f16: TensorProto = { name: 'w', dataType: DataType.FLOAT16, dims: [N, K], raw: new Uint8Array(floatsToHalf(w).buffer) };
const i64 = (name: string, v: number[]): TensorProto => ({ name, dataType: DataType.INT64, dims: [v.length], raw: new Uint8Array(new BigInt64Array(v.map(BigInt)).buffer) });
const mm = (b: string): NodeProto => ({ opType: 'FusedMatMul', domain: 'com.microsoft', inputs: ['x', b], outputs: ['y'], name: 'mm', attributes: { transA: 0, transB: 1, alpha: new FloatAttr(1) } });

const variants: Record<string, { nodes: NodeProto[]; initializers: TensorProto[] }> = {
  const: { nodes: [mm('w')], initializers: [f32] },
  widen: {
    nodes: [
      { opType: 'Shape', inputs: ['x'], outputs: ['b'], name: 's', attributes: { start: 0, end: 1 } },
      { opType: 'Mul', inputs: ['b', 'zero'], outputs: ['z'], name: 'z' },
      { opType: 'Expand', inputs: ['z', 'two'], outputs: ['shape'], name: 'e' },
      { opType: 'Reshape', inputs: ['w', 'shape'], outputs: ['wr'], name: 'r' },
      { opType: 'Cast', inputs: ['wr'], outputs: ['w32'], name: 'c', attributes: { to: DataType.FLOAT } },
      mm('w32'),
    ],
    initializers: [f16, i64('zero', [0]), i64('two', [2])],
  },
  f16fold: { nodes: [{ opType: 'Cast', inputs: ['w'], outputs: ['w32'], name: 'c', attributes: { to: DataType.FLOAT } }, mm('w32')], initializers: [f16] },
};

const sessions: Record<string, ort.InferenceSession> = {};
for (const [k, v] of Object.entries(variants)) {
  const bytes = encodeModel({
    producerName: 'blip-itm-bench', producerVersion: '1', opsets: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: { name: k, nodes: v.nodes, initializers: v.initializers, inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: ['batch', K] }], outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: ['batch', N] }] },
  });
  sessions[k] = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: availableParallelism() });
}
const x = new ort.Tensor('float32', new Float32Array(M * K).fill(0.01), [M, K]);
const times: Record<string, number[]> = {};
for (const s of Object.values(sessions)) await s.run({ x });
for (let r = 0; r < runs; r++) {
  for (const [k, s] of Object.entries(sessions)) {
    const t0 = performance.now();
    await s.run({ x });
    (times[k] ??= []).push((performance.now() - t0) / 1000);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const out: Record<string, number> = { runs };
for (const [k, t] of Object.entries(times)) {
  out[`${k}_s`] = median(t);
  out[`${k}_gflops`] = (2 * M * K * N) / median(t) / 1e9;
}
out.widen_over_const = out.widen_s / out.const_s;
process.stdout.write(`${JSON.stringify(out)}\n`);
