/**
 * transformers' BlipImageProcessor in the browser: the Node build's resize and normalisation
 * (src/preprocessing/image-processor-base.ts) fed by the browser's decoders (./image-decode.ts).
 */
import { BlipImageProcessorBase } from '../preprocessing/image-processor-base.js';
import type { DecodeOptions, RgbImage } from '../preprocessing/rgb-image.js';
import { decodeWebImage, describeWebInput, type WebImageInput } from './image-decode.js';

export class BlipImageProcessor extends BlipImageProcessorBase<WebImageInput> {
  protected decode(input: WebImageInput, options: DecodeOptions): Promise<RgbImage> {
    return decodeWebImage(input, options);
  }

  protected describe(input: WebImageInput): string {
    return describeWebInput(input);
  }
}
