import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { DataType, encodeModel } from '../src/graph/onnx-proto.js';

/**
 * onnxruntime's own fp32 GEMM rate on this machine: one MatMul of the vision MLP's shape
 * ([tokens, hidden] x [hidden, intermediate]) with a constant, pre-packed weight. This is the
 * "ideal" the vision encoder's roofline ratio is measured against.
 */
export async function measureGemmGflops(m: number, k: number, n: number, runs: number, threads = availableParallelism()): Promise<number> {
  const w = new Float32Array(k * n);
  for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1e5 - 0.005;
  const bytes = encodeModel({
    producerName: 'blip-itm-bench', producerVersion: '1', opsets: [{ domain: '', version: 17 }],
    graph: {
      name: 'gemm',
      nodes: [{ opType: 'MatMul', inputs: ['x', 'w'], outputs: ['y'], name: 'mm' }],
      initializers: [{ name: 'w', dataType: DataType.FLOAT, dims: [k, n], raw: new Uint8Array(w.buffer) }],
      inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: [m, k] }],
      outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: [m, n] }],
    },
  });
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: threads });
  const x = new ort.Tensor('float32', new Float32Array(m * k).fill(0.01), [m, k]);
  await session.run({ x });
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await session.run({ x });
    times.push((performance.now() - t0) / 1000);
  }
  await session.release();
  times.sort((a, b) => a - b);
  return (2 * m * k * n) / times[Math.floor(times.length / 2)] / 1e9;
}
