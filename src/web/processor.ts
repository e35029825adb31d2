/**
 * transformers' BlipProcessor in the browser: the same image processor (PIL-exact resize and
 * float32 normalisation) and tokenizer as on Node, fed by the browser's files and decoders.
 */
import { CheckpointError } from '../errors.js';
import type { PreprocessOptions } from '../preprocessing/image-processor-base.js';
import { BlipProcessorBase, type ProcessorCallOf } from '../preprocessing/processor-base.js';
import { BlipTokenizer } from '../preprocessing/tokenizer/blip-tokenizer.js';
import type { WebImageInput } from './image-decode.js';
import { BlipImageProcessor } from './image-processor.js';
import type { ModelFiles } from './model-files.js';

/** maxPixels: the decompression-bomb guard, as on Node (default: PIL's MAX_IMAGE_PIXELS); labels: names in errors. */
export type WebPreprocessOptions = PreprocessOptions;

export type WebProcessorCall = ProcessorCallOf<WebImageInput>;

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

/** The calls are the Node build's (src/preprocessing/processor-base.ts); loading is the browser's. */
export class BlipProcessor extends BlipProcessorBase<WebImageInput, BlipImageProcessor> {
  static async fromFiles(files: ModelFiles): Promise<BlipProcessor> {
    const entries = await Promise.all(Object.entries(TOKENIZER_FILES).map(async ([key, name]) => {
      const blob = await files.get(name);
      return [key, blob ? new Uint8Array(await blob.arrayBuffer()) : undefined] as const;
    }));
    const tokenizer = BlipTokenizer.fromFileContents(Object.fromEntries(entries), files.label, { onWarning: (m) => console.warn(m) });
    const config = await readJsonFile(files, 'preprocessor_config.json');
    return new BlipProcessor(new BlipImageProcessor(config, `${files.label}preprocessor_config.json`), tokenizer);
  }
}
