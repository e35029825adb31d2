import type { BlipConfig } from '../checkpoint/config.js';
import type { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import type { BlipProcessor } from '../preprocessing/processor.js';
import { type ItmInput, itmStage, textStage, type VisionOutput, visionStage } from './stages.js';

/**
 * What the engine needs of a model: its config and tokenizer on the engine's thread, and the
 * three batch runs. Either the caller's model in this thread ({@link inProcessBackend}) or a
 * model hosted on a worker thread (ModelHost, model-host.ts), whose runs never block this
 * thread's event loop.
 */
export interface ModelBackend {
  readonly config: BlipConfig;
  readonly processor: BlipProcessor;
  /** The checkpoint folder (its preprocessor_config.json configures the image workers). */
  readonly dir: string;
  /** Vision encoder runs so far. */
  readonly visionRuns: number;
  vision(pixels: Float32Array[]): Promise<VisionOutput[]>;
  text(ids: number[][]): Promise<Float32Array[]>;
  itm(pairs: ItmInput[], itmTextStart: 'cls' | 'enc'): Promise<Array<[number, number]>>;
}

/**
 * The caller's model, run on this thread. onnxruntime-node's `run` is synchronous under its
 * promise (it runs inside a setImmediate), so each model run holds the event loop for its
 * duration (about 1.2 s for one ViT-L image on 2 CPUs); the loop gets control between runs.
 */
export function inProcessBackend(model: BlipForImageTextRetrieval): ModelBackend {
  const vision = visionStage(model);
  const text = textStage(model);
  const itm = { cls: itmStage(model, 'cls'), enc: itmStage(model, 'enc') };
  return {
    config: model.config,
    processor: model.processor,
    dir: model.source.dir,
    get visionRuns() {
      return model.visionRuns;
    },
    vision,
    text,
    itm: (pairs, start) => itm[start](pairs),
  };
}
