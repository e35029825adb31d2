import { type BlipConfig, visionTokens } from '../src/checkpoint/config.js';

/** Multiply-adds x 2 of one image through the vision encoder (linears, attention, patch conv). */
export function visionFlopsPerImage(config: BlipConfig): number {
  const v = config.vision_config;
  const T = visionTokens(v);
  const D = v.hidden_size;
  const I = v.intermediate_size;
  const linears = 2 * T * D * (3 * D + D + 2 * I);
  const attention = 2 * 2 * T * T * D;
  const patches = 2 * (T - 1) * D * v.num_channels * v.patch_size * v.patch_size;
  return v.num_hidden_layers * (linears + attention) + patches;
}
