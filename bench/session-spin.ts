import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { DataType, encodeModel, type NodeProto, type TensorProto } from '../src/graph/onnx-proto.js';

/**
 * Why sessions set `session.force_spinning_stop` (src/runtime/session.ts): two sessions of the
 * same int8 graph (8 DynamicQuantizeMatMul of the vision MLP's shape, [577, 1024] x [1024, 4096])
 * run in turn, as a model's vision, text and ITM sessions do, with and without the option; and one
 * session alone. One JSON line, milliseconds per GEMM (medians).
 *
 *   node --import tsx bench/session-spin.ts [rounds]
 */
const rounds = Number(process.argv[2] ?? 12);
const [M, K, N, GEMMS] = [577, 1024, 4096, 8];

function graph(): Uint8Array {
  const nodes: NodeProto[] = [];
  const initializers: TensorProto[] = [];
  let x = 'x';
  for (let i = 0; i < GEMMS; i++) {
    const w = new Int8Array(K * N).map((_, j) => ((j * 7919 + i) % 255) - 127);
    initializers.push({ name: `w${i}`, dataType: DataType.INT8, dims: [K, N], raw: new Uint8Array(w.buffer) });
    initializers.push({ name: `s${i}`, dataType: DataType.FLOAT, dims: [N], raw: new Uint8Array(new Float32Array(N).fill(1e-3).buffer) });
    nodes.push({ opType: 'DynamicQuantizeMatMul', domain: 'com.microsoft', inputs: [x, `w${i}`, `s${i}`], outputs: [`u${i}`], name: `up${i}` });
    // Back to [M, K] for the next GEMM: the first K columns.
    nodes.push({ opType: 'Slice', inputs: [`u${i}`, 'start', 'end', 'axis'], outputs: [`x${i}`], name: `slice${i}` });
    x = `x${i}`;
  }
  const i64 = (name: string, v: number): TensorProto => ({ name, dataType: DataType.INT64, dims: [1], raw: new Uint8Array(new BigInt64Array([BigInt(v)]).buffer) });
  initializers.push(i64('start', 0), i64('end', K), i64('axis', 1));
  nodes.push({ opType: 'Identity', inputs: [x], outputs: ['y'], name: 'out' });
  return encodeModel({
    producerName: 'blip-itm-bench', producerVersion: '1', opsets: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
    graph: { name: 'spin', nodes, initializers, inputs: [{ name: 'x', elemType: DataType.FLOAT, shape: [M, K] }], outputs: [{ name: 'y', elemType: DataType.FLOAT, shape: [M, K] }] },
  });
}

const bytes = graph();
const feeds = { x: new ort.Tensor('float32', new Float32Array(M * K).map((_, i) => Math.sin(i)), [M, K]) };
const create = (stop: boolean) => ort.InferenceSession.create(bytes, {
  graphOptimizationLevel: 'all', intraOpNumThreads: availableParallelism(),
  ...(stop ? { extra: { session: { force_spinning_stop: '1' } } } : {}),
} as ort.InferenceSession.SessionOptions);

async function msPerGemm(sessions: ort.InferenceSession[]): Promise<number> {
  const times: number[] = [];
  for (let r = 0; r < rounds + 2; r++) {
    for (const s of sessions) {
      const t = performance.now();
      await s.run(feeds);
      if (r >= 2) times.push((performance.now() - t) / GEMMS);
    }
  }
  await Promise.all(sessions.map((s) => s.release()));
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

const result = {
  threads: availableParallelism(),
  one_session_ms: await msPerGemm([await create(false)]),
  two_sessions_in_turn_ms: await msPerGemm([await create(false), await create(false)]),
  two_sessions_in_turn_force_spinning_stop_ms: await msPerGemm([await create(true), await create(true)]),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
