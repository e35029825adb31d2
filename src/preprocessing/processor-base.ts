/**
 * transformers' BlipProcessor, platform-neutral: images -> pixelValues [N, 3, H, W]; texts ->
 * inputIds and attentionMask [B, L] (padded to the longest by default). The platforms' processors
 * (Node: ./processor.ts, browser: src/web/processor.ts) add loading and their image inputs.
 */
import { UsageError } from '../errors.js';
import type { BlipInputs, Tensor } from '../tensor.js';
import type { BlipImageProcessorBase, PreprocessOptions } from './image-processor-base.js';
import type { BlipTokenizer } from './tokenizer/blip-tokenizer.js';
import type { BatchOptions } from './tokenizer/types.js';

/** `processor(images=..., text=...)`'s arguments for a platform whose images are `I`. */
export interface ProcessorCallOf<I> extends BatchOptions, PreprocessOptions {
  images?: I | I[];
  text?: string | string[];
}

export class BlipProcessorBase<I, IP extends BlipImageProcessorBase<I> = BlipImageProcessorBase<I>, T extends BlipTokenizer = BlipTokenizer> {
  constructor(readonly imageProcessor: IP, readonly tokenizer: T) {}

  async preprocessImages(images: I[], options: PreprocessOptions = {}): Promise<Tensor> {
    const { data, dims } = await this.imageProcessor.preprocess(images, options);
    return { data, dims: [...dims] };
  }

  tokenize(texts: string[], options: BatchOptions = {}): { inputIds: Tensor<BigInt64Array>; attentionMask: Tensor<BigInt64Array> } {
    const enc = this.tokenizer.call(texts, { padding: 'longest', ...options });
    return { inputIds: { data: enc.inputIds, dims: [...enc.dims] }, attentionMask: { data: enc.attentionMask, dims: [...enc.dims] } };
  }

  /** `processor(images=..., text=..., return_tensors="pt")` */
  async call(inputs: ProcessorCallOf<I>): Promise<BlipInputs> {
    const { images, text, ...options } = inputs;
    if (images === undefined && text === undefined) throw new UsageError('processor: give images, text or both');
    const out: BlipInputs = {};
    if (images !== undefined) out.pixelValues = await this.preprocessImages(Array.isArray(images) ? images : [images], options);
    if (text !== undefined) Object.assign(out, this.tokenize(Array.isArray(text) ? text : [text], options));
    return out;
  }
}
