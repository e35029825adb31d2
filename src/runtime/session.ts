import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import type { Dtype } from '../checkpoint/dtype.js';
import type { BuiltGraph } from '../graph/builder.js';
import { DataType, encodeModel } from '../graph/onnx-proto.js';
import { ensureOrtEnvironment } from './ort-env.js';
import { providerError } from './provider-errors.js';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';

export interface RuntimeOptions {
  /**
   * Execution provider; 'cuda' needs onnxruntime-node's CUDA binaries, 'webgpu' a Vulkan driver
   * (see README, "GPU"). Operators a GPU provider lacks run on the CPU, as onnxruntime assigns them.
   */
  executionProvider?: ExecutionProvider;
  /** Threads for one operator; default: every CPU this process may use. */
  intraOpThreads?: number;
}

/**
 * Wraps one ORT session of a built graph. The graph bytes are handed over in memory and ORT
 * reads the weights straight from the checkpoint folder, so nothing is written to disk.
 */
export class GraphSession {
  /** How many times run() was called; tests use it to prove an encoding was reused. */
  runs = 0;

  private constructor(readonly name: string, private readonly session: ort.InferenceSession) {}

  static async create(graph: BuiltGraph, options: RuntimeOptions & { dtype?: Dtype } = {}): Promise<GraphSession> {
    // onnxruntime's own log lines would break the CLI's one-line errors; its failures reach
    // us as exceptions, which say the same.
    ort.env.logLevel = 'fatal';
    await ensureOrtEnvironment();
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      logSeverityLevel: 4,
      executionProviders: [options.executionProvider ?? 'cpu'],
      graphOptimizationLevel: 'all',
      // Left at 0, onnxruntime-node ran on one thread on a 2-vCPU VM: half the GEMM rate.
      intraOpNumThreads: options.intraOpThreads ?? availableParallelism(),
    };
    // onnxruntime-node passes `extra` through as session config entries.
    const session: Record<string, string> = {
      // Each session has its own thread pool, whose threads keep spinning after a run. A model
      // runs several sessions in turn (vision, cross-attention K/V, text, ITM), and on a 2-vCPU
      // machine the previous session's spinning threads took half the CPU from the next one
      // (bench/session-spin.ts: an int8 GEMM took 7.5 ms instead of 3.9 after another session's run).
      force_spinning_stop: '1',
    };
    if (graph.weightsFolder) session.model_external_initializers_file_folder_path = graph.weightsFolder;
    (sessionOptions as Record<string, unknown>).extra = { session };
    try {
      return new GraphSession(graph.name, await ort.InferenceSession.create(graph.bytes, sessionOptions));
    } catch (e) {
      throw providerError(graph.name, options.executionProvider ?? 'cpu', options.dtype ?? 'fp32', e);
    }
  }

  async run(feeds: Record<string, ort.Tensor>, outputs?: string[]): Promise<Record<string, ort.Tensor>> {
    this.runs++;
    return outputs ? this.session.run(feeds, outputs) : this.session.run(feeds);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/**
 * WebGPU compiles float16 shaders only on adapters with `shader-f16`, and onnxruntime finds out
 * on the first run, not at session creation: a one-MatMul float16 graph run here turns that into
 * an error at load time.
 */
export async function assertWebGpuShaderF16(): Promise<void> {
  const bytes = encodeModel({
    producerName: 'blip-itm', producerVersion: '1', opsets: [{ domain: '', version: 17 }],
    graph: {
      name: 'f16_probe', nodes: [{ opType: 'MatMul', inputs: ['x', 'x'], outputs: ['y'], name: 'm' }], initializers: [],
      inputs: [{ name: 'x', elemType: DataType.FLOAT16, shape: [2, 2] }], outputs: [{ name: 'y', elemType: DataType.FLOAT16, shape: [2, 2] }],
    },
  });
  let session: ort.InferenceSession | undefined;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['webgpu'], logSeverityLevel: 4 });
    await session.run({ x: new ort.Tensor('float16', new Uint16Array(4).fill(0x3c00), [2, 2]) });
  } catch (e) {
    throw providerError('fp16 probe', 'webgpu', 'fp16', e);
  } finally {
    await session?.release();
  }
}
