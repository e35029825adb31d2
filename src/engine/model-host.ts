import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { type BlipConfig, readBlipConfig } from '../checkpoint/config.js';
import { resolveCheckpoint } from '../checkpoint/hub.js';
import { BlipError, UsageError } from '../errors.js';
import type { FromPretrainedOptions } from '../model/blip-itm.js';
import { BlipProcessor } from '../preprocessing/processor.js';
import type { ModelBackend } from './backend.js';
import type { ModelReply, ModelRequest, ModelWorkerData } from './model-worker.js';
import type { ItmInput, VisionOutput } from './stages.js';
import { EngineClosedError } from './types.js';

const WORKER_FILE = fileURLToPath(new URL(`./model-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

/**
 * BlipForImageTextRetrieval loaded on its own worker thread, for ScoringEngine.fromPretrained.
 * onnxruntime-node runs a session synchronously on the calling thread, so a model on the
 * service's thread stops its event loop for every run (over a second per image for the large
 * model on 2 CPUs); here only the worker's thread waits, and the service keeps answering (health
 * checks, metrics, other requests' I/O). The tokenizer and config also live on this thread,
 * since tokenizing is cheap and the engine needs them to shape its batches. Tensors cross by
 * transfer (pixels in, states and features out); an ITM batch sends each distinct image's
 * states once. The thread is a one-thread piscina pool: piscina loads TypeScript workers under
 * tsx (tests) as well as the built ones, and the thread is never shut down while idle.
 */
export class ModelHost implements ModelBackend {
  private runs = 0;
  private disposed: Promise<void> | undefined;

  private constructor(readonly config: BlipConfig, readonly processor: BlipProcessor, readonly dir: string, private readonly pool: Piscina<ModelRequest, ModelReply>) {}

  /** Resolves (and downloads) the checkpoint here, then loads the model on a new worker thread. */
  static async load(idOrPath: string, options: FromPretrainedOptions = {}): Promise<ModelHost> {
    const resolved = await resolveCheckpoint(idOrPath, options);
    const [config, processor] = await Promise.all([readBlipConfig(join(resolved.dir, 'config.json')), BlipProcessor.fromFolder(resolved.dir)]);
    const { executionProvider, intraOpThreads, visionBatchSize, textBatchSize } = options;
    const workerData: ModelWorkerData = { dir: resolved.dir, options: { executionProvider, intraOpThreads, visionBatchSize, textBatchSize } };
    const pool = new Piscina<ModelRequest, ModelReply>({ filename: WORKER_FILE, minThreads: 1, maxThreads: 1, idleTimeout: Infinity, workerData });
    const host = new ModelHost(config, processor, resolved.dir, pool);
    try {
      await host.call({ op: 'load' });
    } catch (e) {
      await pool.destroy();
      throw e;
    }
    return host;
  }

  get visionRuns(): number {
    return this.runs;
  }

  async vision(pixels: Float32Array[]): Promise<VisionOutput[]> {
    return (await this.call({ op: 'vision', pixels }, pixels.map((p) => p.buffer as ArrayBuffer))) as VisionOutput[];
  }

  async text(ids: number[][]): Promise<Float32Array[]> {
    return (await this.call({ op: 'text', ids })) as Float32Array[];
  }

  async itm(pairs: ItmInput[], start: 'cls' | 'enc'): Promise<Array<[number, number]>> {
    const index = new Map<string, number>();
    const images: Array<{ key: string; states: Float32Array }> = [];
    const refs = pairs.map((p) => {
      let i = index.get(p.image.key);
      if (i === undefined) {
        i = images.push({ key: p.image.key, states: p.image.states }) - 1;
        index.set(p.image.key, i);
      }
      return { image: i, ids: p.ids };
    });
    // The states stay in the engine's cache: copied, not moved.
    return (await this.call({ op: 'itm', start, images, pairs: refs })) as Array<[number, number]>;
  }

  /** Releases the model's sessions and ends its thread. */
  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      await this.call({ op: 'dispose' }).catch(() => undefined);
      await this.pool.destroy();
    })();
    return this.disposed;
  }

  private async call(request: ModelRequest, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.disposed && request.op !== 'dispose') throw new EngineClosedError();
    const reply = await this.pool.run(request, { transferList: transfer });
    if (!reply.ok) throw rebuild(reply.error);
    this.runs = reply.visionRuns;
    return reply.result;
  }
}

const BLIP_ERRORS = new Set(['BlipError', 'CheckpointError', 'ImageError', 'ImageTooLargeError', 'FileError']);

/** The worker's error as this thread's class: user-fixable errors stay BlipErrors (one line, exit 1). */
function rebuild(error: { name: string; message: string }): Error {
  if (error.name === 'UsageError') return new UsageError(error.message);
  if (!BLIP_ERRORS.has(error.name)) return new Error(error.message);
  const e = new BlipError(error.message);
  e.name = error.name;
  return e;
}
