import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { type BlipConfig, readBlipConfig } from '../checkpoint/config.js';
import { type ResolveOptions, resolveCheckpoint } from '../checkpoint/hub.js';
import { type CheckpointWeights, openWeights } from '../checkpoint/weights.js';
import { validateConfigAgainstWeights, validatePreprocessorAgainstConfig } from '../checkpoint/validate.js';
import type { DerivedWeights } from '../checkpoint/derived-weights.js';
import { type Dtype, parseDtype } from '../checkpoint/dtype.js';
import type { BuiltGraph } from '../graph/builder.js';
import { buildBlipGraphs } from '../graph/precision.js';
import { BlipProcessor } from '../preprocessing/processor.js';
import { checkTokenizerAgainstEmbedding, vocabularyFile } from '../preprocessing/tokenizer-checks.js';
import type { RuntimeOptions } from '../runtime/session.js';
import { BlipItmCore } from './blip-itm-core.js';
import { createSessions, type Sessions } from './sessions.js';

export type { EncodedImages, ForwardOptions, ImageEncodings, TextEncodings } from './blip-itm-core.js';

export interface FromPretrainedOptions extends RuntimeOptions, ResolveOptions {
  /**
   * Images per vision-encoder run. Default 1: on CPU batch 4 is no faster per image (measured,
   * docs/performance.md) and its activations cost about 600 MB more.
   */
  visionBatchSize?: number;
  /** Captions per text or ITM run. */
  textBatchSize?: number;
  /**
   * 'fp32' (default), 'fp16' (float16 end to end) or 'int8' (dynamically quantized linears;
   * 'q8' is an alias). See README, "Precision".
   */
  dtype?: Dtype | 'q8';
  /**
   * Where fp16/int8 weights converted from the checkpoint are cached (default
   * `$XDG_CACHE_HOME/blip-itm/weights`, else `~/.cache/blip-itm/weights`).
   */
  weightsCacheDir?: string;
  /**
   * fp16 only: whether activations are float16 too. Default: yes on GPU providers; no on 'cpu',
   * whose x86 kernels have no float16 MatMul/Add/Softmax (onnxruntime would cast around every node
   * and keep float32 copies of all weights). `true` on CPU runs the GPU graphs, for testing them.
   */
  halfActivations?: boolean;
}

/**
 * BlipForImageTextRetrieval on onnxruntime-node, with transformers' calling convention (the
 * forward logic is ./blip-itm-core.ts, shared with the browser build; loading is Node's part here):
 *
 *   const model = await BlipForImageTextRetrieval.fromPretrained('Salesforce/blip-itm-large-coco');
 *   const inputs = await model.processor.call({ images: ['cat.jpg'], text: ['a cat'] });
 *   const itm = await model.forward(inputs);                         // logits [B, 2]
 *   const cos = await model.forward(inputs, { useItmHead: false });  // cosine [images, texts]
 */
export class BlipForImageTextRetrieval extends BlipItmCore<BlipProcessor> {
  private constructor(
    config: BlipConfig,
    processor: BlipProcessor,
    readonly source: { id: string; dir: string; weights: CheckpointWeights; derived?: DerivedWeights },
    readonly graphs: Record<keyof Sessions, BuiltGraph>,
    sessions: Sessions,
    options: FromPretrainedOptions,
    dtype: Dtype,
  ) {
    super(config, processor, {
      ort,
      sessions,
      dtype,
      weightsLabel: source.weights.file,
      preprocessorLabel: join(source.dir, 'preprocessor_config.json'),
      visionBatchSize: options.visionBatchSize,
      textBatchSize: options.textBatchSize,
    });
  }

  static async fromPretrained(idOrPath: string, options: FromPretrainedOptions = {}): Promise<BlipForImageTextRetrieval> {
    const dtype = parseDtype(options.dtype);
    const resolved = await resolveCheckpoint(idOrPath, options);
    const configFile = join(resolved.dir, 'config.json');
    const config = await readBlipConfig(configFile);
    const weights = await openWeights(resolved.dir);
    // Everything sized from the config is checked against the weights before anything is built.
    validateConfigAgainstWeights(config, weights.tensors, configFile, weights.file);
    const processor = await BlipProcessor.fromFolder(resolved.dir);
    validatePreprocessorAgainstConfig(processor.imageProcessor.config, config, join(resolved.dir, 'preprocessor_config.json'));
    checkTokenizerAgainstEmbedding(processor.tokenizer, vocabularyFile(resolved.dir, existsSync(join(resolved.dir, 'vocab.txt'))), config.text_config.vocab_size);
    // onnxruntime's CPU provider has no float16 kernels for MatMul, Add, Softmax... on x86: it would
    // cast around every node and hold float32 copies of all weights. On CPU, fp16 therefore keeps
    // the float16 weights (half the memory) and computes in float32; GPU providers run float16.
    const half = options.halfActivations ?? (options.executionProvider ?? 'cpu') !== 'cpu';
    const activations = dtype === 'fp16' && !half ? 'fp32' : undefined;
    const matmulLinears = (options.executionProvider ?? 'cpu') !== 'cpu';
    const { graphs, derived } = await buildBlipGraphs(config, weights, dtype, { cacheDir: options.weightsCacheDir, activations, matmulLinears });
    const sessions = await createSessions(graphs, { ...options, dtype });
    return new BlipForImageTextRetrieval(config, processor, { id: idOrPath, dir: resolved.dir, weights, derived }, graphs, sessions, options, dtype);
  }
}
