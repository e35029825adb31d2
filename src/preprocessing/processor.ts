import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type ResolveOptions, resolveCheckpoint } from '../checkpoint/hub.js';
import { UsageError } from '../errors.js';
import type { BlipInputs, Tensor } from '../tensor.js';
import type { ImageInput } from './image-decode.js';
import { BlipImageProcessor, type PreprocessOptions } from './image-processor.js';
import { type BatchOptions, BlipTokenizer } from './tokenizer.js';
import { checkTokenizer, vocabularyFile } from './tokenizer-checks.js';

/** Only what preprocessing needs, so `blip-itm tokenize` never downloads weights. */
const PROCESSOR_FILES = {
  required: ['preprocessor_config.json'],
  optional: ['vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.json', 'added_tokens.json'],
};

export interface ProcessorCall extends BatchOptions, PreprocessOptions {
  images?: ImageInput | ImageInput[];
  text?: string | string[];
}

/**
 * transformers' BlipProcessor: images -> pixelValues [N, 3, H, W]; texts -> inputIds and
 * attentionMask [B, L] (padded to the longest by default).
 */
export class BlipProcessor {
  constructor(readonly imageProcessor: BlipImageProcessor, readonly tokenizer: BlipTokenizer) {}

  static async fromFolder(dir: string): Promise<BlipProcessor> {
    const imageProcessor = await BlipImageProcessor.fromFile(join(dir, 'preprocessor_config.json'));
    const tokenizer = await BlipTokenizer.fromFolder(dir);
    checkTokenizer(tokenizer, vocabularyFile(dir, existsSync(join(dir, 'vocab.txt'))));
    return new BlipProcessor(imageProcessor, tokenizer);
  }

  /** A Hub repo id or local folder, fetching only the preprocessing files. */
  static async fromPretrained(idOrPath: string, options: ResolveOptions = {}): Promise<BlipProcessor> {
    const resolved = await resolveCheckpoint(idOrPath, { files: PROCESSOR_FILES, ...options });
    return BlipProcessor.fromFolder(resolved.dir);
  }

  async preprocessImages(images: ImageInput[], options: PreprocessOptions = {}): Promise<Tensor> {
    const { data, dims } = await this.imageProcessor.preprocess(images, options);
    return { data, dims: [...dims] };
  }

  tokenize(texts: string[], options: BatchOptions = {}): { inputIds: Tensor<BigInt64Array>; attentionMask: Tensor<BigInt64Array> } {
    const enc = this.tokenizer.call(texts, { padding: 'longest', ...options });
    return { inputIds: { data: enc.inputIds, dims: [...enc.dims] }, attentionMask: { data: enc.attentionMask, dims: [...enc.dims] } };
  }

  /** `processor(images=..., text=..., return_tensors="pt")` */
  async call(inputs: ProcessorCall): Promise<BlipInputs> {
    const { images, text, ...options } = inputs;
    if (images === undefined && text === undefined) throw new UsageError('processor: give images, text or both');
    const out: BlipInputs = {};
    if (images !== undefined) out.pixelValues = await this.preprocessImages(Array.isArray(images) ? images : [images], options);
    if (text !== undefined) Object.assign(out, this.tokenize(Array.isArray(text) ? text : [text], options));
    return out;
  }
}
