import { z } from 'zod';
import { CheckpointError } from '../errors.js';

/**
 * `config.json` of a BLIP retrieval checkpoint. Absent fields take the defaults of
 * transformers' BlipVisionConfig / BlipTextConfig / BlipConfig (4.40), so a diff-style config
 * (as `save_pretrained` writes it) means the same thing here as in Python. Unknown fields are
 * ignored: generation settings and the like do not affect retrieval.
 */

const SUPPORTED_ACTIVATIONS = ['gelu', 'relu', 'gelu_new', 'gelu_pytorch_tanh', 'quick_gelu'] as const;
export type Activation = (typeof SUPPORTED_ACTIVATIONS)[number];

const posInt = z.number().int().positive();
const eps = z.number().positive().max(1);
const activation = z.enum(SUPPORTED_ACTIVATIONS);

const visionSchema = z.object({
  hidden_size: posInt.default(768),
  intermediate_size: posInt.default(3072),
  num_hidden_layers: posInt.default(12),
  num_attention_heads: posInt.default(12),
  num_channels: posInt.default(3),
  image_size: posInt.default(384),
  patch_size: posInt.default(16),
  hidden_act: activation.default('gelu'),
  layer_norm_eps: eps.default(1e-5),
});

const textSchema = z.object({
  vocab_size: posInt.default(30524),
  hidden_size: posInt.default(768),
  // null appears in real configs (blip-itm-base-coco) and means "use the default".
  encoder_hidden_size: posInt.nullish().transform((v) => v ?? 768),
  intermediate_size: posInt.default(3072),
  num_hidden_layers: posInt.default(12),
  num_attention_heads: posInt.default(8),
  max_position_embeddings: posInt.default(512),
  hidden_act: activation.default('gelu'),
  layer_norm_eps: eps.default(1e-12),
  pad_token_id: z.number().int().nonnegative().nullish().transform((v) => v ?? 0),
  bos_token_id: z.number().int().nonnegative().nullish().transform((v) => v ?? 30522),
  sep_token_id: z.number().int().nonnegative().nullish().transform((v) => v ?? 102),
});

const blipSchema = z.object({
  model_type: z.string().optional(),
  architectures: z.array(z.string()).nullish(),
  image_text_hidden_size: posInt.default(256),
  projection_dim: posInt.default(512),
  vision_config: visionSchema.default(visionSchema.parse({})),
  text_config: textSchema.default(textSchema.parse({})),
});

export type VisionConfig = z.infer<typeof visionSchema>;
export type TextConfig = z.infer<typeof textSchema>;
export type BlipConfig = z.infer<typeof blipSchema>;

const RETRIEVAL_ARCHITECTURE = 'BlipForImageTextRetrieval';

export function parseBlipConfig(json: unknown, file = 'config.json'): BlipConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new CheckpointError(file, 'expected a JSON object');
  }
  const raw = json as Record<string, unknown>;
  if (raw.model_type !== undefined && raw.model_type !== 'blip') {
    throw new CheckpointError(
      file,
      `model_type "${String(raw.model_type)}" is not supported: blip-itm runs BLIP image-text retrieval checkpoints (model_type "blip", architecture ${RETRIEVAL_ARCHITECTURE})`,
    );
  }
  const archs = raw.architectures;
  if (Array.isArray(archs) && archs.length > 0 && !archs.includes(RETRIEVAL_ARCHITECTURE)) {
    throw new CheckpointError(
      file,
      `architecture ${archs.join(', ')} is not supported: blip-itm needs a ${RETRIEVAL_ARCHITECTURE} checkpoint (e.g. Salesforce/blip-itm-large-coco); captioning and VQA checkpoints have no ITM head`,
    );
  }
  const result = blipSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new CheckpointError(file, `invalid value at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const config = result.data;
  checkDivisible(file, 'vision_config', config.vision_config.hidden_size, config.vision_config.num_attention_heads);
  checkDivisible(file, 'text_config', config.text_config.hidden_size, config.text_config.num_attention_heads);
  if (config.vision_config.image_size % config.vision_config.patch_size !== 0) {
    throw new CheckpointError(file, `vision_config.image_size ${config.vision_config.image_size} is not a multiple of patch_size ${config.vision_config.patch_size}`);
  }
  if (config.text_config.encoder_hidden_size !== config.vision_config.hidden_size) {
    throw new CheckpointError(
      file,
      `text_config.encoder_hidden_size ${config.text_config.encoder_hidden_size} must equal vision_config.hidden_size ${config.vision_config.hidden_size}: the text encoder cross-attends to the vision states`,
    );
  }
  return config;
}

function checkDivisible(file: string, section: string, hidden: number, heads: number): void {
  if (hidden % heads !== 0) {
    throw new CheckpointError(file, `${section}.hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  }
}

/** Tokens the vision encoder produces: one per patch plus the class token. */
export function visionTokens(v: VisionConfig): number {
  return (v.image_size / v.patch_size) ** 2 + 1;
}
