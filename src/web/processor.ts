/**
 * transformers' BlipProcessor in the browser: the same image processor (PIL-exact resize and
 * float32 normalisation) and tokenizer as on Node, fed by the browser's files and decoders.
 */
import { CheckpointError, ImageError, UsageError } from '../errors.js';
import { BlipImageProcessor } from '../preprocessing/image-processor.js';
import { BlipTokenizer } from '../preprocessing/tokenizer/blip-tokenizer.js';
import type { BatchOptions } from '../preprocessing/tokenizer/types.js';
import type { BlipInputs, Tensor } from '../tensor.js';
import { decodeWebImage, describeWebInput, type WebImageInput } from './image-decode.js';
import type { ModelFiles } from './model-files.js';

export interface WebPreprocessOptions {
  /** Decompression-bomb guard, as on Node (default: PIL's MAX_IMAGE_PIXELS). */
  maxPixels?: number;
}

export interface WebProcessorCall extends BatchOptions, WebPreprocessOptions {
  images?: WebImageInput | WebImageInput[];
  text?: string | string[];
}

const TOKENIZER_FILES = {
  vocab: 'vocab.txt',
  config: 'tokenizer_config.json',
  specialTokensMap: 'special_tokens_map.json',
  addedTokens: 'added_tokens.json',
  tokenizerJson: 'tokenizer.json',
} as const;

export async function readJsonFile(files: ModelFiles, name: string): Promise<Record<string, unknown>> {
  const blob = await files.get(name);
  if (!blob) throw new CheckpointError(`${files.label}${name}`, 'not found');
  try {
    const json: unknown = JSON.parse(await blob.text());
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new Error('expected a JSON object');
    return json as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointError(`${files.label}${name}`, `is not a JSON object (${(e as Error).message})`, { cause: e });
  }
}

export class BlipProcessor {
  constructor(readonly imageProcessor: BlipImageProcessor, readonly tokenizer: BlipTokenizer) {}

  static async fromFiles(files: ModelFiles): Promise<BlipProcessor> {
    const entries = await Promise.all(Object.entries(TOKENIZER_FILES).map(async ([key, name]) => {
      const blob = await files.get(name);
      return [key, blob ? new Uint8Array(await blob.arrayBuffer()) : undefined] as const;
    }));
    const tokenizer = BlipTokenizer.fromFileContents(Object.fromEntries(entries), files.label, { onWarning: (m) => console.warn(m) });
    const config = await readJsonFile(files, 'preprocessor_config.json');
    return new BlipProcessor(new BlipImageProcessor(config, `${files.label}preprocessor_config.json`), tokenizer);
  }

  async preprocessImages(images: WebImageInput[], options: WebPreprocessOptions = {}): Promise<Tensor> {
    const { height, width } = this.imageProcessor.size;
    const resize = this.imageProcessor.config.doResize;
    let data = new Float32Array(resize ? images.length * 3 * height * width : 0);
    let dims = [images.length, 3, height, width];
    for (let i = 0; i < images.length; i++) {
      const label = describeWebInput(images[i]);
      const rgb = this.imageProcessor.resizeToUint8(await decodeWebImage(images[i], { label, maxPixels: options.maxPixels }));
      if (i === 0 && !resize) {
        dims = [images.length, 3, rgb.height, rgb.width];
        data = new Float32Array(images.length * 3 * rgb.height * rgb.width);
      } else if (rgb.height !== dims[2] || rgb.width !== dims[3]) {
        throw new ImageError(label, `is ${rgb.width}x${rgb.height} but the first image is ${dims[3]}x${dims[2]}; with do_resize false all images in a batch must have the same size`);
      }
      this.imageProcessor.writePixelValues(rgb, data, i * 3 * dims[2] * dims[3]);
    }
    return { data, dims };
  }

  tokenize(texts: string[], options: BatchOptions = {}): { inputIds: Tensor<BigInt64Array>; attentionMask: Tensor<BigInt64Array> } {
    const enc = this.tokenizer.call(texts, { padding: 'longest', ...options });
    return { inputIds: { data: enc.inputIds, dims: [...enc.dims] }, attentionMask: { data: enc.attentionMask, dims: [...enc.dims] } };
  }

  /** `processor(images=..., text=..., return_tensors="pt")` */
  async call(inputs: WebProcessorCall): Promise<BlipInputs> {
    const { images, text, ...options } = inputs;
    if (images === undefined && text === undefined) throw new UsageError('processor: give images, text or both');
    const out: BlipInputs = {};
    if (images !== undefined) out.pixelValues = await this.preprocessImages(Array.isArray(images) ? images : [images], options);
    if (text !== undefined) Object.assign(out, this.tokenize(Array.isArray(text) ? text : [text], options));
    return out;
  }
}
