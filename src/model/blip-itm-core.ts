/**
 * BlipForImageTextRetrieval's forward logic, shared by Node (src/model/blip-itm.ts, onnxruntime-node)
 * and the browser (src/web/blip-itm.ts, onnxruntime-web). It is platform-neutral: the onnxruntime
 * flavour comes in as its module (for tensors) and its sessions, already created by the platform
 * from the graphs of src/graph; loading a checkpoint is each platform's own part.
 */
import type { Tensor as OrtTensor } from 'onnxruntime-common';
import type { BlipConfig } from '../checkpoint/blip-config.js';
import { visionTokens } from '../checkpoint/blip-config.js';
import { floatsToHalf } from '../checkpoint/half.js';
import type { Dtype } from '../checkpoint/dtype.js';
import { BlipError, CheckpointError, UsageError } from '../errors.js';
import { crossKeyName, crossValueName, USE_IMAGE } from '../graph/blip-graphs.js';
import { type BlipInputs, rows, type Tensor } from '../tensor.js';
import { assertFinite } from './assert-finite.js';
import type {
  EncodedImages, ForwardOptions, GraphRunner, ImageEncodings, ModelParts, ProcessorSettings, TextEncodings,
} from './core-types.js';
import { checkTextInputs, repeatRow } from './text-inputs.js';

export type {
  EncodedImages, ForwardOptions, GraphRunner, ImageEncodings, ModelParts, ModelSessions, OrtModule, ProcessorSettings, TextEncodings,
} from './core-types.js';

/** BLIP's `[ENC]` id, fixed by the 30524-row embedding of every released checkpoint. */
const DEFAULT_ENC_TOKEN_ID = 30523;

/**
 * The model's forward logic with transformers' calling convention; the platforms' classes
 * (both named BlipForImageTextRetrieval) extend it with loading.
 */
export class BlipItmCore<P extends ProcessorSettings> {
  private disposed = false;
  private placeholderFeeds: Record<string, OrtTensor> | undefined;

  protected constructor(
    readonly config: BlipConfig,
    readonly processor: P,
    private readonly parts: ModelParts,
  ) {}

  /** The precision the graphs run in. */
  get dtype(): Dtype {
    return this.parts.dtype;
  }

  /** Number of vision-encoder runs so far (tests assert that encodings are reused). */
  get visionRuns(): number {
    return this.parts.sessions.vision.runs;
  }

  get crossKVRuns(): number {
    return this.parts.sessions.crossKV.runs;
  }

  async forward(inputs: BlipInputs, options: ForwardOptions = {}): Promise<Tensor> {
    const { pixelValues, inputIds, attentionMask } = inputs;
    if (!pixelValues) throw new UsageError('forward(): inputs.pixelValues is required');
    if (!inputIds) throw new UsageError('forward(): inputs.inputIds is required');
    const images = await this.encodeImages(pixelValues);
    if (options.useItmHead === false) {
      const texts = await this.encodeTexts({ inputIds, attentionMask });
      return this.cosine(images, texts);
    }
    return this.forwardItm(images, { inputIds, attentionMask }, options);
  }

  /** Runs the vision encoder once per image; the result serves ITC and ITM alike. */
  async encodeImages(pixelValues: Tensor): Promise<ImageEncodings> {
    this.assertLive();
    const v = this.config.vision_config;
    const expected = [v.num_channels, v.image_size, v.image_size];
    const d = pixelValues.dims;
    if (d.length !== 4 || d.slice(1).some((x, i) => x !== expected[i]) || pixelValues.data.length !== d.reduce((a, b) => a * b, 1)) {
      if (d.length === 4 && d[1] === v.num_channels && !this.processor.imageProcessor.config.doResize) {
        // The processor's output, not the caller's: the checkpoint's preprocessor does not resize.
        throw new CheckpointError(
          this.parts.preprocessorLabel,
          `do_resize is false, so images must already be ${v.image_size}x${v.image_size} for this model; got ${d[3]}x${d[2]}`,
        );
      }
      throw new UsageError(`pixelValues must have shape [N, ${expected.join(', ')}] for this model, got [${d.join(', ')}]`);
    }
    const n = d[0];
    const tokens = visionTokens(v);
    const states = new Float32Array(n * tokens * v.hidden_size);
    const embeds = new Float32Array(n * this.config.image_text_hidden_size);
    const step = this.parts.visionBatchSize ?? 1;
    for (let start = 0; start < n; start += step) {
      const end = Math.min(n, start + step);
      const chunk = rows(pixelValues, start, end);
      // fp16 takes pixel_values as float16, as the model card's `.to("cuda", torch.float16)`.
      const pixels = this.parts.dtype === 'fp16' ? this.halfTensor(chunk.data, chunk.dims) : this.floatTensor(chunk.data, chunk.dims);
      const out = await this.parts.sessions.vision.run({ pixel_values: pixels });
      // The ITC feature is normalised from the states, so a non-finite state shows here too.
      assertFinite(out.image_embeds.data as Float32Array, this.parts.weightsLabel, 'image features');
      states.set(out.vision_states.data as Float32Array, start * tokens * v.hidden_size);
      embeds.set(out.image_embeds.data as Float32Array, start * this.config.image_text_hidden_size);
    }
    return {
      count: n,
      states: { data: states, dims: [n, tokens, v.hidden_size] },
      embeds: { data: embeds, dims: [n, this.config.image_text_hidden_size] },
      crossKV: new Array(n).fill(undefined),
    };
  }

  /** Runs the unimodal text encoder (ITC features). */
  async encodeTexts(inputs: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> }): Promise<TextEncodings> {
    this.assertLive();
    const { inputIds, attentionMask } = checkTextInputs(inputs, this.config.text_config);
    const n = inputIds.dims[0];
    const E = this.config.image_text_hidden_size;
    const embeds = new Float32Array(n * E);
    const step = this.parts.textBatchSize ?? 32;
    for (let start = 0; start < n; start += step) {
      const end = Math.min(n, start + step);
      const ids = rows(inputIds, start, end);
      const mask = rows(attentionMask, start, end);
      const out = await this.parts.sessions.text.run({
        input_ids: this.int64Tensor(ids.data, ids.dims),
        attention_mask: this.int64Tensor(mask.data, mask.dims),
        ...this.textOnlyFeeds(),
      }, ['text_embeds']);
      assertFinite(out.text_embeds.data as Float32Array, this.parts.weightsLabel, 'text features');
      embeds.set(out.text_embeds.data as Float32Array, start * E);
    }
    return { count: n, inputIds, attentionMask, embeds: { data: embeds, dims: [n, E] } };
  }

  /** Cosine matrix [images, texts] of normalised features, as transformers' use_itm_head=False. */
  cosine(images: Pick<ImageEncodings, 'count' | 'embeds'>, texts: Pick<TextEncodings, 'count' | 'embeds'>): Tensor {
    const E = this.config.image_text_hidden_size;
    const out = new Float32Array(images.count * texts.count);
    const a = images.embeds.data;
    const b = texts.embeds.data;
    for (let i = 0; i < images.count; i++) {
      for (let j = 0; j < texts.count; j++) {
        let s = 0;
        for (let k = 0; k < E; k++) s += a[i * E + k] * b[j * E + k];
        out[i * texts.count + j] = s;
      }
    }
    return { data: out, dims: [images.count, texts.count] };
  }

  /**
   * ITM logits [T, 2] of every caption against the stored encoding of image `imageIndex`.
   * The vision encoder does not run again; the image's cross-attention keys/values are
   * computed once and broadcast over the caption batch.
   */
  async itmForImage(
    images: EncodedImages,
    imageIndex: number,
    texts: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> },
    options: Pick<ForwardOptions, 'itmTextStart'> = {},
  ): Promise<Tensor> {
    this.assertLive();
    if (!Number.isInteger(imageIndex) || imageIndex < 0 || imageIndex >= images.count) {
      throw new UsageError(`imageIndex ${imageIndex} is out of range for ${images.count} encoded image(s)`);
    }
    const kv = await this.crossKVFor(images, imageIndex);
    const { inputIds, attentionMask } = checkTextInputs(texts, this.config.text_config);
    const n = inputIds.dims[0];
    const logits = new Float32Array(n * 2);
    const step = this.parts.textBatchSize ?? 32;
    for (let start = 0; start < n; start += step) {
      const end = Math.min(n, start + step);
      const out = await this.runItm(rows(inputIds, start, end), rows(attentionMask, start, end), kv, options);
      logits.set(out, start * 2);
    }
    return { data: logits, dims: [n, 2] };
  }

  /** Pairs (image_i, text_i); a single image or a single text broadcasts over the other side. */
  private async forwardItm(
    images: EncodedImages,
    texts: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> },
    options: ForwardOptions,
  ): Promise<Tensor> {
    const checked = checkTextInputs(texts, this.config.text_config);
    const nt = checked.inputIds.dims[0];
    if (images.count === 1) return this.itmForImage(images, 0, checked, options);
    if (nt !== images.count && nt !== 1) {
      throw new UsageError(`ITM pairs image i with text i: got ${images.count} images and ${nt} texts`);
    }
    const ids = nt === 1 ? repeatRow(checked.inputIds, images.count) : checked.inputIds;
    const mask = nt === 1 ? repeatRow(checked.attentionMask, images.count) : checked.attentionMask;
    return this.itmRows(images, { inputIds: ids, attentionMask: mask }, options);
  }

  /**
   * ITM logits [N, 2] of N rows (image i, text i) of distinct images, as the scoring engine
   * batches single pairs from different callers. Each row's cross-attention keys/values are
   * computed batched and not cached; `rowsPerRun` (default textBatchSize) bounds how many are
   * held at once (about 42 MB per image for ViT-L at 384 px).
   */
  async itmRows(
    images: EncodedImages,
    texts: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> },
    options: Pick<ForwardOptions, 'itmTextStart'> & { rowsPerRun?: number } = {},
  ): Promise<Tensor> {
    this.assertLive();
    const { inputIds: ids, attentionMask: mask } = checkTextInputs(texts, this.config.text_config);
    if (ids.dims[0] !== images.count) throw new UsageError(`itmRows pairs image i with text i: got ${images.count} images and ${ids.dims[0]} texts`);
    const logits = new Float32Array(images.count * 2);
    const step = options.rowsPerRun ?? this.parts.textBatchSize ?? 32;
    for (let start = 0; start < images.count; start += step) {
      const end = Math.min(images.count, start + step);
      const states = rows(images.states, start, end);
      const kv = await this.parts.sessions.crossKV.run({ vision_states: this.floatTensor(states.data, states.dims) });
      logits.set(await this.runItm(rows(ids, start, end), rows(mask, start, end), kv, options), start * 2);
    }
    return { data: logits, dims: [images.count, 2] };
  }

  /**
   * ITM logits [pairs, 2] for arbitrary (image, text) index pairs, as retrieval reranking needs.
   * Pairs are grouped by image so each image's cross-attention keys/values are computed once and
   * broadcast over all of its captions; they are kept only where `images` already caches them,
   * so memory stays flat over large galleries.
   */
  async itmPairs(
    images: EncodedImages,
    texts: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> },
    pairs: ReadonlyArray<{ image: number; text: number }>,
    options: Pick<ForwardOptions, 'itmTextStart'> = {},
  ): Promise<Tensor> {
    this.assertLive();
    const checked = checkTextInputs(texts, this.config.text_config);
    const nt = checked.inputIds.dims[0];
    const byImage = new Map<number, number[]>();
    pairs.forEach((p, k) => {
      if (!Number.isInteger(p.image) || p.image < 0 || p.image >= images.count) throw new UsageError(`pairs[${k}].image ${p.image} is out of range for ${images.count} image(s)`);
      if (!Number.isInteger(p.text) || p.text < 0 || p.text >= nt) throw new UsageError(`pairs[${k}].text ${p.text} is out of range for ${nt} text(s)`);
      if (!byImage.has(p.image)) byImage.set(p.image, []);
      byImage.get(p.image)!.push(k);
    });
    const L = checked.inputIds.dims[1];
    const logits = new Float32Array(pairs.length * 2);
    const step = this.parts.textBatchSize ?? 32;
    for (const [image, members] of byImage) {
      const kv = await this.crossKVFor(images, image, false);
      for (let start = 0; start < members.length; start += step) {
        const chunk = members.slice(start, start + step);
        const ids = new BigInt64Array(chunk.length * L);
        const mask = new BigInt64Array(chunk.length * L);
        chunk.forEach((k, r) => {
          const t = pairs[k].text;
          ids.set(checked.inputIds.data.subarray(t * L, (t + 1) * L), r * L);
          mask.set(checked.attentionMask.data.subarray(t * L, (t + 1) * L), r * L);
        });
        const out = await this.runItm({ data: ids, dims: [chunk.length, L] }, { data: mask, dims: [chunk.length, L] }, kv, options);
        chunk.forEach((k, r) => logits.set(out.subarray(2 * r, 2 * r + 2), 2 * k));
      }
    }
    return { data: logits, dims: [pairs.length, 2] };
  }

  private async crossKVFor(images: EncodedImages, index: number, cache = true): Promise<Record<string, OrtTensor>> {
    const cached = images.crossKV?.[index];
    if (cached) return cached;
    const one = rows(images.states, index, index + 1);
    const kv = await this.parts.sessions.crossKV.run({ vision_states: this.floatTensor(one.data, one.dims) });
    if (cache && images.crossKV) images.crossKV[index] = kv;
    return kv;
  }

  private async runItm(
    inputIds: Tensor<BigInt64Array>,
    attentionMask: Tensor<BigInt64Array>,
    kv: Record<string, OrtTensor>,
    options: Pick<ForwardOptions, 'itmTextStart'>,
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
    const feeds: Record<string, OrtTensor> = {
      input_ids: this.int64Tensor(ids, inputIds.dims),
      attention_mask: this.int64Tensor(attentionMask.data, attentionMask.dims),
      [USE_IMAGE]: this.boolTensor(true),
    };
    for (let i = 0; i < this.config.text_config.num_hidden_layers; i++) {
      feeds[crossKeyName(i)] = kv[crossKeyName(i)];
      feeds[crossValueName(i)] = kv[crossValueName(i)];
    }
    const out = await this.parts.sessions.text.run(feeds, ['itm_logits']);
    const logits = out.itm_logits.data as Float32Array;
    assertFinite(logits, this.parts.weightsLabel, 'ITM logits');
    return logits;
  }

  /** The text graph's image inputs for a unimodal pass: one-token placeholders, never read. */
  private textOnlyFeeds(): Record<string, OrtTensor> {
    if (!this.placeholderFeeds) {
      const t = this.config.text_config;
      const headDim = t.hidden_size / t.num_attention_heads;
      const feeds: Record<string, OrtTensor> = { [USE_IMAGE]: this.boolTensor(false) };
      const half = this.parts.dtype === 'fp16';
      const zeros = (dims: number[]) => (half ? this.halfTensor(new Float32Array(t.hidden_size), dims) : this.floatTensor(new Float32Array(t.hidden_size), dims));
      for (let i = 0; i < t.num_hidden_layers; i++) {
        feeds[crossKeyName(i)] = zeros([1, t.num_attention_heads, headDim, 1]);
        feeds[crossValueName(i)] = zeros([1, t.num_attention_heads, 1, headDim]);
      }
      this.placeholderFeeds = feeds;
    }
    return this.placeholderFeeds;
  }

  private floatTensor(data: Float32Array, dims: readonly number[]): OrtTensor {
    return new this.parts.ort.Tensor('float32', data, dims);
  }

  /** A float16 tensor of float32 values (rounded to nearest even). */
  private halfTensor(data: Float32Array, dims: readonly number[]): OrtTensor {
    return new this.parts.ort.Tensor('float16', floatsToHalf(data), dims);
  }

  private int64Tensor(data: BigInt64Array, dims: readonly number[]): OrtTensor {
    return new this.parts.ort.Tensor('int64', data, dims);
  }

  private boolTensor(value: boolean): OrtTensor {
    return new this.parts.ort.Tensor('bool', new Uint8Array([value ? 1 : 0]), [1]);
  }

  private assertLive(): void {
    if (this.disposed) throw new BlipError('this model was disposed; load it again with fromPretrained()');
  }

  /** Releases the sessions. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all(Object.values(this.parts.sessions).map((s: GraphRunner) => s.dispose()));
  }
}
