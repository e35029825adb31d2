/**
 * BlipForImageTextRetrieval in the browser, with the Node API's names:
 *
 *   const model = await BlipForImageTextRetrieval.fromPretrained('Salesforce/blip-itm-base-coco', { device: 'webgpu' });
 *   const inputs = await model.processor.call({ images: [file], text: ['a cat'] });
 *   const itm = await model.forward(inputs);                         // logits [B, 2]
 *   const cos = await model.forward(inputs, { useItmHead: false });  // cosine [images, texts]
 *
 * The graphs are the Node build's (src/graph); what differs is where bytes come from and which
 * onnxruntime runs them. The forward logic mirrors src/model/blip-itm.ts, which imports
 * onnxruntime-node at load time and so cannot be shared until the runtime is behind a seam.
 */
import { type BlipConfig, parseBlipConfig, visionTokens } from '../checkpoint/config.js';
import type { TensorIndex } from '../checkpoint/tensor-info.js';
import { BlipError, UsageError } from '../errors.js';
import type { BuiltGraph } from '../graph/builder.js';
import { buildCrossKVGraph, buildTextGraph, buildVisionGraph, crossKeyName, crossValueName, type GraphPrecision, USE_IMAGE } from '../graph/blip-graphs.js';
import type { Dtype } from '../checkpoint/dtype.js';
import { type BlipInputs, rows, type Tensor } from '../tensor.js';
import { BlobSource } from './byte-source.js';
import { BlobModelFiles, type ModelFiles, type ModelFilesOptions, modelBaseUrl, UrlModelFiles } from './model-files.js';
import { BlipProcessor, readJsonFile } from './processor.js';
import {
  boolTensor, configureRuntime, floatTensor, halfTensor, int64Tensor, pickDevice, type WebDevice, WebGraphSession, type WebRuntimeOptions, type WebTensor,
} from './session.js';
import { packGraphWeights, readSafetensorsIndex, WEIGHTS_FILE } from './weights.js';
import { checkTextInputs } from '../model/text-inputs.js';
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

export interface WebForwardOptions {
  /** true: ITM logits [B, 2] per (image_i, text_i) pair; false: cosine matrix [images, texts]. */
  useItmHead?: boolean;
  /** 'cls' (default, as transformers) or 'enc' (original BLIP's [ENC] first token for ITM). */
  itmTextStart?: 'cls' | 'enc';
}

export interface WebImageEncodings {
  count: number;
  states: Tensor;
  embeds: Tensor;
}

const DEFAULT_ENC_TOKEN_ID = 30523;
const BUILDERS: Record<GraphKey, (c: BlipConfig, w: TensorIndex, label: string, p: GraphPrecision) => BuiltGraph> = {
  vision: buildVisionGraph, text: buildTextGraph, crossKV: buildCrossKVGraph,
};

export class BlipForImageTextRetrieval {
  private disposed = false;
  private placeholderFeeds: Record<string, WebTensor> | undefined;

  private constructor(
    readonly config: BlipConfig,
    readonly processor: BlipProcessor,
    readonly device: WebDevice,
    readonly source: string,
    private readonly sessions: Record<GraphKey, WebGraphSession>,
    private readonly options: WebFromPretrainedOptions,
    /** The precision the graphs run in. */
    readonly dtype: Dtype = 'fp32',
    private readonly halfActivations = false,
  ) {}

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
    return new BlipForImageTextRetrieval(config, processor, device, files.label, sessions, options, dtype, half);
  }

  get visionRuns(): number {
    return this.sessions.vision.runs;
  }

  async forward(inputs: BlipInputs, options: WebForwardOptions = {}): Promise<Tensor> {
    const { pixelValues, inputIds, attentionMask } = inputs;
    if (!pixelValues) throw new UsageError('forward(): inputs.pixelValues is required');
    if (!inputIds) throw new UsageError('forward(): inputs.inputIds is required');
    const images = await this.encodeImages(pixelValues);
    const texts = checkTextInputs({ inputIds, attentionMask }, this.config.text_config);
    if (options.useItmHead === false) return this.cosine(images, await this.encodeTexts(texts));
    const n = images.count;
    const nt = texts.inputIds.dims[0];
    if (n !== 1 && nt !== 1 && nt !== n) throw new UsageError(`ITM pairs image i with text i: got ${n} images and ${nt} texts`);
    const pairs = Math.max(n, nt);
    const L = texts.inputIds.dims[1];
    const logits = new Float32Array(pairs * 2);
    if (n === 1) {
      logits.set((await this.itmForImage(images, 0, texts, options)).data);
    } else {
      // Rows (image i, text i) batched as Node's itmRows does: int8 quantizes each run's
      // activations with one scale, so the same batches give the same numbers as Node.
      const step = this.options.textBatchSize ?? 32;
      const textRow = (t: Tensor<BigInt64Array>, p: number) => t.data.subarray((nt === 1 ? 0 : p) * L, ((nt === 1 ? 0 : p) + 1) * L);
      for (let start = 0; start < pairs; start += step) {
        const end = Math.min(pairs, start + step);
        const ids = new BigInt64Array((end - start) * L);
        const mask = new BigInt64Array((end - start) * L);
        for (let p = start; p < end; p++) {
          ids.set(textRow(texts.inputIds, p), (p - start) * L);
          mask.set(textRow(texts.attentionMask, p), (p - start) * L);
        }
        const states = rows(images.states, start, end);
        const kv = await this.sessions.crossKV.run({ vision_states: floatTensor(states.data, states.dims) });
        logits.set(await this.runItm({ data: ids, dims: [end - start, L] }, { data: mask, dims: [end - start, L] }, kv, options), 2 * start);
      }
    }
    return { data: logits, dims: [pairs, 2] };
  }

  /**
   * ITM logits [T, 2] of every caption against encoded image `imageIndex`: its cross-attention
   * keys/values are computed once and broadcast over the caption batch, as on Node.
   */
  async itmForImage(
    images: WebImageEncodings,
    imageIndex: number,
    texts: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> },
    options: Pick<WebForwardOptions, 'itmTextStart'> = {},
  ): Promise<Tensor> {
    this.assertLive();
    if (!Number.isInteger(imageIndex) || imageIndex < 0 || imageIndex >= images.count) {
      throw new UsageError(`imageIndex ${imageIndex} is out of range for ${images.count} encoded image(s)`);
    }
    const { inputIds, attentionMask } = checkTextInputs(texts, this.config.text_config);
    const states = rows(images.states, imageIndex, imageIndex + 1);
    const kv = await this.sessions.crossKV.run({ vision_states: floatTensor(states.data, states.dims) });
    const n = inputIds.dims[0];
    const logits = new Float32Array(n * 2);
    const step = this.options.textBatchSize ?? 32;
    for (let start = 0; start < n; start += step) {
      const end = Math.min(n, start + step);
      logits.set(await this.runItm(rows(inputIds, start, end), rows(attentionMask, start, end), kv, options), 2 * start);
    }
    return { data: logits, dims: [n, 2] };
  }

  async encodeImages(pixelValues: Tensor): Promise<WebImageEncodings> {
    this.assertLive();
    const v = this.config.vision_config;
    const expected = [v.num_channels, v.image_size, v.image_size];
    const d = pixelValues.dims;
    if (d.length !== 4 || d.slice(1).some((x, i) => x !== expected[i]) || pixelValues.data.length !== d.reduce((a, b) => a * b, 1)) {
      throw new UsageError(`pixelValues must have shape [N, ${expected.join(', ')}] for this model, got [${d.join(', ')}]`);
    }
    const n = d[0];
    const tokens = visionTokens(v);
    const E = this.config.image_text_hidden_size;
    const states = new Float32Array(n * tokens * v.hidden_size);
    const embeds = new Float32Array(n * E);
    for (let i = 0; i < n; i++) {
      const one = rows(pixelValues, i, i + 1);
      // fp16 takes pixel_values as float16, as on Node.
      const pixels = this.dtype === 'fp16' ? halfTensor(one.data, one.dims) : floatTensor(one.data, one.dims);
      const out = await this.sessions.vision.run({ pixel_values: pixels });
      states.set(out.vision_states.data as Float32Array, i * tokens * v.hidden_size);
      embeds.set(out.image_embeds.data as Float32Array, i * E);
    }
    return { count: n, states: { data: states, dims: [n, tokens, v.hidden_size] }, embeds: { data: embeds, dims: [n, E] } };
  }

  async encodeTexts(inputs: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> }): Promise<{ count: number; embeds: Tensor }> {
    this.assertLive();
    const { inputIds, attentionMask } = checkTextInputs(inputs, this.config.text_config);
    const n = inputIds.dims[0];
    const E = this.config.image_text_hidden_size;
    const embeds = new Float32Array(n * E);
    const step = this.options.textBatchSize ?? 32;
    for (let start = 0; start < n; start += step) {
      const end = Math.min(n, start + step);
      const ids = rows(inputIds, start, end);
      const mask = rows(attentionMask, start, end);
      const out = await this.sessions.text.run({
        input_ids: int64Tensor(ids.data, ids.dims), attention_mask: int64Tensor(mask.data, mask.dims), ...this.textOnlyFeeds(),
      }, ['text_embeds']);
      embeds.set(out.text_embeds.data as Float32Array, start * E);
    }
    return { count: n, embeds: { data: embeds, dims: [n, E] } };
  }

  /** Cosine matrix [images, texts] of the normalised features (transformers' use_itm_head=False). */
  cosine(images: { count: number; embeds: Tensor }, texts: { count: number; embeds: Tensor }): Tensor {
    const E = this.config.image_text_hidden_size;
    const out = new Float32Array(images.count * texts.count);
    for (let i = 0; i < images.count; i++) {
      for (let j = 0; j < texts.count; j++) {
        let s = 0;
        for (let k = 0; k < E; k++) s += images.embeds.data[i * E + k] * texts.embeds.data[j * E + k];
        out[i * texts.count + j] = s;
      }
    }
    return { data: out, dims: [images.count, texts.count] };
  }

  private async runItm(
    inputIds: Tensor<BigInt64Array>, attentionMask: Tensor<BigInt64Array>, kv: Record<string, WebTensor>, options: WebForwardOptions,
  ): Promise<Float32Array> {
    let ids = inputIds.data;
    if (options.itmTextStart === 'enc') {
      ids = ids.slice();
      const L = inputIds.dims[1];
      const enc = BigInt(this.processor.tokenizer.encTokenId ?? DEFAULT_ENC_TOKEN_ID);
      for (let r = 0; r < inputIds.dims[0]; r++) ids[r * L] = enc;
    } else if (options.itmTextStart !== undefined && options.itmTextStart !== 'cls') {
      throw new UsageError(`itmTextStart must be "cls" or "enc", got ${JSON.stringify(options.itmTextStart)}`);
    }
    const feeds: Record<string, WebTensor> = {
      input_ids: int64Tensor(ids, inputIds.dims),
      attention_mask: int64Tensor(attentionMask.data, attentionMask.dims),
      [USE_IMAGE]: boolTensor(true),
    };
    for (let i = 0; i < this.config.text_config.num_hidden_layers; i++) {
      feeds[crossKeyName(i)] = kv[crossKeyName(i)];
      feeds[crossValueName(i)] = kv[crossValueName(i)];
    }
    const out = await this.sessions.text.run(feeds, ['itm_logits']);
    return out.itm_logits.data as Float32Array;
  }

  private textOnlyFeeds(): Record<string, WebTensor> {
    if (!this.placeholderFeeds) {
      const t = this.config.text_config;
      const headDim = t.hidden_size / t.num_attention_heads;
      const feeds: Record<string, WebTensor> = { [USE_IMAGE]: boolTensor(false) };
      const zeros = (dims: number[]) => (this.halfActivations ? halfTensor : floatTensor)(new Float32Array(t.hidden_size), dims);
      for (let i = 0; i < t.num_hidden_layers; i++) {
        feeds[crossKeyName(i)] = zeros([1, t.num_attention_heads, headDim, 1]);
        feeds[crossValueName(i)] = zeros([1, t.num_attention_heads, 1, headDim]);
      }
      this.placeholderFeeds = feeds;
    }
    return this.placeholderFeeds;
  }

  private assertLive(): void {
    if (this.disposed) throw new BlipError('this model was disposed; load it again with fromPretrained()');
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(Object.values(this.sessions).map((s) => s.dispose()));
  }
}
