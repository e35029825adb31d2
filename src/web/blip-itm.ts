/**
 * BlipForImageTextRetrieval in the browser, with the Node API's names:
 *
 *   const model = await BlipForImageTextRetrieval.fromPretrained('Salesforce/blip-itm-base-coco', { device: 'webgpu' });
 *   const inputs = await model.processor.call({ images: [file], text: ['a cat'] });
 *   const itm = await model.forward(inputs);                         // logits [B, 2]
 *   const cos = await model.forward(inputs, { useItmHead: false });  // cosine [images, texts]
 *
 * The graphs and the forward logic are the Node build's (src/graph, src/model/blip-itm-core.ts);
 * what differs is where bytes come from and which onnxruntime runs them, which is this module.
 */
import * as ort from 'onnxruntime-web';
import { type BlipConfig, parseBlipConfig } from '../checkpoint/blip-config.js';
import type { TensorIndex } from '../checkpoint/tensor-info.js';
import { BlipError } from '../errors.js';
import type { BuiltGraph } from '../graph/builder.js';
import { buildCrossKVGraph, buildTextGraph, buildVisionGraph, type GraphPrecision } from '../graph/blip-graphs.js';
import type { Dtype } from '../checkpoint/dtype.js';
import { BlipItmCore, type ForwardOptions, type ImageEncodings } from '../model/blip-itm-core.js';
import { BlobSource } from './byte-source.js';
import { BlobModelFiles, type ModelFiles, type ModelFilesOptions, modelBaseUrl, UrlModelFiles } from './model-files.js';
import { BlipProcessor, readJsonFile } from './processor.js';
import { configureRuntime, pickDevice, type WebDevice, WebGraphSession, type WebRuntimeOptions } from './session.js';
import { packGraphWeights, readSafetensorsIndex, WEIGHTS_FILE } from './weights.js';
import { buildWithDerivedWeights } from './derived-weights.js';
import { resolveWebDtype } from './dtype.js';

/**
 * Weight precision, as on Node ('q8' = 'int8'). Default: 'int8' on WASM; 'fp16' on WebGPU when the
 * adapter has shader-f16, else 'fp32' (see web/dtype.ts). fp16/int8 weights are derived in memory
 * from the checkpoint at load.
 */
export type WebDType = 'fp32' | 'fp16' | 'int8' | 'q8';

export type GraphKey = 'vision' | 'text' | 'crossKV';

export interface WebFromPretrainedOptions extends WebRuntimeOptions, ModelFilesOptions {
  dtype?: WebDType;
  /**
   * fp16 only: whether activations are float16 too. Default: yes on WebGPU; no on WASM, whose
   * CPU kernels would cast around every float16 node (fp16 there keeps fp32 arithmetic).
   */
  halfActivations?: boolean;
  /**
   * Per-graph device override ('vision', 'text', 'crossKV'), e.g. to keep one graph on WASM where
   * a WebGPU kernel misbehaves. Default: `device` for all three.
   */
  graphDevices?: Partial<Record<GraphKey, WebDevice>>;
  /** Captions per text or ITM run (default 32). */
  textBatchSize?: number;
}

export type WebForwardOptions = ForwardOptions;

/** What encodeImages returns; the ITM methods also take encodings without `crossKV`. */
export type WebImageEncodings = ImageEncodings;
const BUILDERS: Record<GraphKey, (c: BlipConfig, w: TensorIndex, label: string, p: GraphPrecision) => BuiltGraph> = {
  vision: buildVisionGraph, text: buildTextGraph, crossKV: buildCrossKVGraph,
};

export class BlipForImageTextRetrieval extends BlipItmCore<BlipProcessor> {
  private constructor(
    config: BlipConfig,
    processor: BlipProcessor,
    readonly device: WebDevice,
    readonly source: string,
    sessions: Record<GraphKey, WebGraphSession>,
    options: WebFromPretrainedOptions,
    dtype: Dtype,
  ) {
    super(config, processor, {
      ort,
      sessions,
      dtype,
      weightsLabel: `${source}${WEIGHTS_FILE}`,
      preprocessorLabel: `${source}preprocessor_config.json`,
      textBatchSize: options.textBatchSize,
      // fp32/fp16: one image's cross-attention keys/values at a time (about 42 MB for ViT-L at
      // 384 px), since the WASM heap is 4 GB in all. int8 quantizes each run's activations with one
      // scale, so it keeps Node's batching (textBatchSize rows per run) to give Node's numbers.
      crossKVRowsPerRun: dtype === 'int8' ? undefined : 1,
    });
  }

  /**
   * `idOrUrl`: a Hub repo id, a URL of a checkpoint folder (absolute or relative to the page),
   * or the checkpoint's files as a Map of name -> Blob / a FileList.
   */
  static async fromPretrained(
    idOrUrl: string | ReadonlyMap<string, Blob> | Iterable<File>,
    options: WebFromPretrainedOptions = {},
  ): Promise<BlipForImageTextRetrieval> {
    const files: ModelFiles = typeof idOrUrl === 'string'
      ? new UrlModelFiles(modelBaseUrl(idOrUrl, options), options)
      : idOrUrl instanceof Map ? new BlobModelFiles(idOrUrl) : BlobModelFiles.fromFileList(idOrUrl as Iterable<File>);
    configureRuntime(options);
    const device = await pickDevice(options.device);
    const devices: Record<GraphKey, WebDevice> = { vision: device, text: device, crossKV: device, ...options.graphDevices };
    const dtype = await resolveWebDtype(options.dtype, device, Object.values(devices));
    // Activations are one type across the graphs: cross keys/values pass from one to the other.
    const half = dtype === 'fp16' && (options.halfActivations ?? device === 'webgpu');
    const [config, processor, weightsBlob] = await Promise.all([
      readJsonFile(files, 'config.json').then((j) => parseBlipConfig(j, `${files.label}config.json`)),
      BlipProcessor.fromFiles(files),
      files.get(WEIGHTS_FILE),
    ]);
    if (!weightsBlob) {
      throw new BlipError(`${files.label}${WEIGHTS_FILE}: not found (the browser build reads safetensors checkpoints only)`);
    }
    const weights = new BlobSource(weightsBlob, `${files.label}${WEIGHTS_FILE}`);
    const tensors = await readSafetensorsIndex(weights);
    const sessions = {} as Record<GraphKey, WebGraphSession>;
    try {
      // One graph at a time: each packed weight buffer is dropped once its session holds a copy.
      for (const key of Object.keys(BUILDERS) as GraphKey[]) {
        const precision: GraphPrecision = { dtype, activations: dtype === 'fp16' && !half ? 'fp32' : undefined, matmulLinears: dtype !== 'fp32' && devices[key] === 'webgpu' };
        const build = (index: TensorIndex): BuiltGraph => BUILDERS[key](config, index, weights.label, precision);
        let graph: BuiltGraph;
        let packed;
        if (dtype === 'fp32') {
          packed = await packGraphWeights(build(tensors), tensors, weights);
          graph = build(packed.index);
        } else {
          ({ graph, weights: packed } = await buildWithDerivedWeights(build, tensors, weights));
        }
        // onnxruntime-web 1.30 on WebGPU returns wrong cross keys/values for the optimised cross_kv
        // graph (ITM logits off by ~1, measured on SwiftShader); unoptimised it matches WASM. The
        // graph is linears, reshapes and transposes, so the optimiser has little to gain there.
        const unoptimised = key === 'crossKV' && devices[key] === 'webgpu';
        sessions[key] = await WebGraphSession.create(graph, packed, devices[key], unoptimised ? { ...options, graphOptimizationLevel: 'disabled' } : options);
      }
    } catch (e) {
      await Promise.all(Object.values(sessions).map((s) => s.dispose()));
      throw e;
    }
    return new BlipForImageTextRetrieval(config, processor, device, files.label, sessions, options, dtype);
  }
}
