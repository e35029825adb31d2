import { CheckpointError } from '../errors.js';
import { readJsonFile } from '../io/files.js';
import { decodeImage, describeInput, type ImageInput } from './image-decode.js';
import { BlipImageProcessorBase } from './image-processor-base.js';
import type { DecodeOptions, RgbImage } from './rgb-image.js';

export {
  type BlipImageProcessorConfig, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, type PixelValues, type PreprocessOptions,
} from './image-processor-base.js';

/**
 * transformers' BlipImageProcessor on Node: images are file paths, encoded bytes or raw pixels,
 * decoded by sharp as PIL would (./image-decode.ts); the arithmetic is ./image-processor-base.ts.
 */
export class BlipImageProcessor extends BlipImageProcessorBase<ImageInput> {
  /** Loads a `preprocessor_config.json`; bad JSON or values give a CheckpointError naming the file. */
  static async fromFile(path: string): Promise<BlipImageProcessor> {
    const json = await readJsonFile(path, { kind: 'configJson', what: 'preprocessor_config.json' });
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new CheckpointError(path, 'preprocessor config must be a JSON object');
    }
    return new BlipImageProcessor(json as Record<string, unknown>, path);
  }

  protected decode(input: ImageInput, options: DecodeOptions): Promise<RgbImage> {
    return decodeImage(input, options);
  }

  protected describe(input: ImageInput): string {
    return describeInput(input);
  }
}
