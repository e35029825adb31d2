import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { BlipError } from '../errors.js';
import type { BuiltGraph } from '../graph/builder.js';
import { ensureOrtEnvironment } from './ort-env.js';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface RuntimeOptions {
  /** Execution provider; 'cuda' needs onnxruntime-node's CUDA binaries (see README, "GPU"). */
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

  static async create(graph: BuiltGraph, options: RuntimeOptions = {}): Promise<GraphSession> {
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
    if (graph.weightsFolder) {
      // onnxruntime-node passes `extra` through as session config entries.
      (sessionOptions as Record<string, unknown>).extra = {
        session: { model_external_initializers_file_folder_path: graph.weightsFolder },
      };
    }
    try {
      return new GraphSession(graph.name, await ort.InferenceSession.create(graph.bytes, sessionOptions));
    } catch (e) {
      const ep = options.executionProvider ?? 'cpu';
      const hint = ep === 'cuda'
        ? ' (the CUDA provider needs onnxruntime-node installed with its CUDA binaries; see the README section "GPU")'
        : '';
      throw new BlipError(`could not create the ${graph.name} session on ${ep}${hint}: ${(e as Error).message}`, { cause: e });
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

export function floatTensor(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}

export function int64Tensor(data: BigInt64Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('int64', data, dims);
}

export function boolTensor(value: boolean): ort.Tensor {
  return new ort.Tensor('bool', new Uint8Array([value ? 1 : 0]), [1]);
}
