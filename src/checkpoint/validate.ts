import { CheckpointError } from '../errors.js';
import { type BlipConfig, visionTokens } from './config.js';
import type { TensorIndex } from './tensor-info.js';

/**
 * Checks config.json against the weights before any graph is built or any buffer sized from the
 * config is allocated. The graphs trust the config's sizes: a config claiming 10^9 text layers
 * would have the text graph declare two inputs per layer (gigabytes) before the first missing
 * weight is noticed. The weights are bounded by the file they come from, so every size the graphs
 * use is checked here against a weight's shape, and each message names the config field.
 *
 * `configFile` and `weightsFile` are the paths used in messages.
 */
export function validateConfigAgainstWeights(config: BlipConfig, weights: TensorIndex, configFile: string, weightsFile: string): void {
  const v = config.vision_config;
  const t = config.text_config;
  checkLayers(weights, /^vision_model\.encoder\.layers\.(\d+)\./, v.num_hidden_layers, 'vision_config.num_hidden_layers', configFile, weightsFile);
  checkLayers(weights, /^text_encoder\.encoder\.layer\.(\d+)\./, t.num_hidden_layers, 'text_config.num_hidden_layers', configFile, weightsFile);

  const expect = (name: string, shape: number[], fields: string): void => {
    const info = weights.get(name);
    if (!info) throw new CheckpointError(weightsFile, `missing weight "${name}"; is this a BlipForImageTextRetrieval checkpoint?`);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(configFile, `${fields} imply weight "${name}" of shape [${shape.join(', ')}], but ${weightsFile} has [${info.shape.join(', ')}]`);
    }
  };
  const D = v.hidden_size;
  expect('vision_model.embeddings.patch_embedding.weight', [D, v.num_channels, v.patch_size, v.patch_size],
    'vision_config.hidden_size, num_channels and patch_size');
  expect('vision_model.embeddings.position_embedding', [1, visionTokens(v), D], 'vision_config.image_size, patch_size and hidden_size');
  expect('vision_model.encoder.layers.0.mlp.fc1.weight', [v.intermediate_size, D], 'vision_config.intermediate_size and hidden_size');
  expect('vision_proj.weight', [config.image_text_hidden_size, D], 'image_text_hidden_size and vision_config.hidden_size');
  const H = t.hidden_size;
  expect('text_encoder.embeddings.word_embeddings.weight', [t.vocab_size, H], 'text_config.vocab_size and hidden_size');
  expect('text_encoder.embeddings.position_embeddings.weight', [t.max_position_embeddings, H], 'text_config.max_position_embeddings and hidden_size');
  expect('text_encoder.encoder.layer.0.intermediate.dense.weight', [t.intermediate_size, H], 'text_config.intermediate_size and hidden_size');
  expect('text_encoder.encoder.layer.0.crossattention.self.key.weight', [H, t.encoder_hidden_size], 'text_config.hidden_size and encoder_hidden_size');
  expect('text_proj.weight', [config.image_text_hidden_size, H], 'image_text_hidden_size and text_config.hidden_size');
  expect('itm_head.weight', [2, H], 'text_config.hidden_size');
}

function checkLayers(weights: TensorIndex, pattern: RegExp, layers: number, field: string, configFile: string, weightsFile: string): void {
  const present = new Set<number>();
  for (const name of weights.keys()) {
    const m = pattern.exec(name);
    if (m) present.add(Number(m[1]));
  }
  // `layers` may be absurd (10^9); `present` is bounded by the weights, so compare sizes first.
  if (layers > present.size) {
    throw new CheckpointError(configFile, `${field} is ${layers} but ${weightsFile} holds ${present.size} such layers`);
  }
  for (let i = 0; i < layers; i++) {
    if (!present.has(i)) throw new CheckpointError(configFile, `${field} is ${layers} but ${weightsFile} has no layer ${i}`);
  }
}

/**
 * Checks the preprocessor's output size against the vision encoder's input: resizing to anything
 * else would allocate [N, 3, size, size] floats for a run that must fail.
 */
export function validatePreprocessorAgainstConfig(
  preprocessor: { doResize: boolean; height: number; width: number },
  config: BlipConfig,
  preprocessorFile: string,
): void {
  const s = config.vision_config.image_size;
  if (preprocessor.doResize && (preprocessor.height !== s || preprocessor.width !== s)) {
    throw new CheckpointError(
      preprocessorFile,
      `"size" is ${preprocessor.height}x${preprocessor.width} but config.json vision_config.image_size is ${s}: the vision encoder takes ${s}x${s} images`,
    );
  }
}
