import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type ResolveOptions, resolveCheckpoint } from '../checkpoint/hub.js';
import type { ImageInput } from './image-decode.js';
import { BlipImageProcessor } from './image-processor.js';
import { BlipProcessorBase, type ProcessorCallOf } from './processor-base.js';
import { BlipTokenizer } from './tokenizer.js';
import { checkTokenizer, vocabularyFile } from './tokenizer-checks.js';

/** Only what preprocessing needs, so `blip-itm tokenize` never downloads weights. */
const PROCESSOR_FILES = {
  required: ['preprocessor_config.json'],
  optional: ['vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.json', 'added_tokens.json'],
};

export type ProcessorCall = ProcessorCallOf<ImageInput>;

/**
 * transformers' BlipProcessor on Node: images -> pixelValues [N, 3, H, W]; texts -> inputIds and
 * attentionMask [B, L] (padded to the longest by default). The calls are ./processor-base.ts;
 * loading from a folder or the Hub is Node's part.
 */
export class BlipProcessor extends BlipProcessorBase<ImageInput, BlipImageProcessor, BlipTokenizer> {
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
}
