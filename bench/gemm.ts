import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { DataType, encodeModel, type NodeProto, type TensorProto } from '../src/graph/onnx-proto.js';

function weight(name: string, rows: number, cols: number): TensorProto {
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1e5 - 0.005;
  return { name, dataType: DataType.FLOAT, dims: [rows, cols], raw: new Uint8Array(w.buffer) };
}

/**
 * onnxruntime's own fp32 GEMM rate on this machine, the "ideal" of the roofline ratio: plain
 * MatMuls of the vision MLP's shapes with constant, pre-packed weights.
 *
 * pairs = 0: one MatMul [tokens, hidden] x [hidden, intermediate] per run, the issue's
 * definition. pairs >= 1: that many up/down MatMul pairs back to back in one graph, as the
 * encoder's layers run, so thread wake-ups and per-run overhead do not count against the rate;
 * this reaches a higher rate and gives the stricter ratio.
 */
export async function measureGemmGflops(
  tokens: number, hidden: number, intermediate: number, runs: number, threads = availableParallelism(), pairs = 4,
): Promise<number> {
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  let x = 'x';
  if (pairs === 0) {
    initializers.push(weight('up', hidden, intermediate));
    nodes.push({ opType: 'MatMul', inputs: ['x', 'up'], outputs: ['y'], name: 'up' });
  }
  for (let p = 0; p < pairs; p++) {
    initializers.push(weight(`up${p}`, hidden, intermediate), weight(`down${p}`, intermediate, hidden));
    nodes.push({ opType: 'MatMul', inputs: [x, `up${p}`], outputs: [`u${p}`], name: `up${p}` });
    nodes.push({ opType: 'MatMul', inputs: [`u${p}`, `down${p}`], outputs: [`d${p}`], name: `down${p}` });
    x = `d${p}`;
  }
  if (pairs > 0) nodes.push({ opType: 'Identity', inputs: [x], outputs: ['y'], name: 'out' });
  const bytes = encodeModel({
    producerName: 'blip-itm-bench', producerVersion: '1', opsets: [{ domain: '', version: 17 }],
    graph: {
      name: 'gemm', nodes, initializers,
      inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: [tokens, hidden] }],
      outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: [tokens, pairs === 0 ? intermediate : hidden] }],
    },
  });
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'all', intraOpNumThreads: threads });
  const input = new ort.Tensor('float32', new Float32Array(tokens * hidden).fill(0.01), [tokens, hidden]);
  await session.run({ x: input });
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await session.run({ x: input });
    times.push((performance.now() - t0) / 1000);
  }
  await session.release();
  times.sort((a, b) => a - b);
  const matmuls = pairs === 0 ? 1 : 2 * pairs;
  return (matmuls * 2 * tokens * hidden * intermediate) / times[Math.floor(times.length / 2)] / 1e9;
}
