/**
 * onnxruntime-web sessions of our built graphs, the browser counterpart of src/runtime/session.ts
 * (which binds onnxruntime-node). Weights arrive as `externalData` buffers, not files.
 */
import * as ort from 'onnxruntime-web';
import { BlipError } from '../errors.js';
import type { BuiltGraph } from '../graph/builder.js';

export type WebDevice = 'webgpu' | 'wasm';

export interface WebRuntimeOptions {
  /** Default: 'webgpu' where navigator.gpu gives an adapter, else 'wasm'. */
  device?: WebDevice;
  /** URL prefix of onnxruntime-web's .wasm files; default: beside the blip-itm bundle. */
  wasmPaths?: string;
  /** WASM threads (needs a cross-origin isolated page); default: navigator.hardwareConcurrency, at most 8. */
  numThreads?: number;
  /** onnxruntime's graph optimisation level (default 'all'). */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

let configured = false;

/** ort.env is global: the first model's settings win, as onnxruntime-web reads them once. */
export function configureRuntime(options: WebRuntimeOptions): void {
  if (configured) return;
  configured = true;
  ort.env.logLevel = 'error';
  if (options.wasmPaths) ort.env.wasm.wasmPaths = options.wasmPaths;
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated;
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  ort.env.wasm.numThreads = isolated ? (options.numThreads ?? Math.min(8, cores)) : 1;
}

export async function pickDevice(requested: WebDevice | undefined): Promise<WebDevice> {
  if (requested === 'wasm') return 'wasm';
  const gpu = typeof navigator !== 'undefined' ? (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu : undefined;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (requested === 'webgpu' && !adapter) {
    throw new BlipError('device "webgpu" was asked for but this browser gives no WebGPU adapter (try device: "wasm")');
  }
  if (requested !== undefined && requested !== 'webgpu') {
    throw new BlipError(`device must be "webgpu" or "wasm", got ${JSON.stringify(requested)}`);
  }
  return adapter ? 'webgpu' : 'wasm';
}

export class WebGraphSession {
  runs = 0;

  private constructor(readonly name: string, private readonly session: ort.InferenceSession) {}

  static async create(
    graph: BuiltGraph, weights: { location: string; data: Uint8Array }, device: WebDevice, options: WebRuntimeOptions = {},
  ): Promise<WebGraphSession> {
    try {
      const session = await ort.InferenceSession.create(graph.bytes, {
        executionProviders: [device],
        graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
        externalData: [{ path: weights.location, data: weights.data }],
        logSeverityLevel: 3,
      });
      return new WebGraphSession(graph.name, session);
    } catch (e) {
      throw new BlipError(`could not create the ${graph.name} session on ${device}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
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
