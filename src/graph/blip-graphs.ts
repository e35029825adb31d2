import type { BlipConfig, TextConfig } from '../checkpoint/blip-config.js';
import { visionTokens } from '../checkpoint/blip-config.js';
import type { Dtype } from '../checkpoint/dtype.js';
import type { TensorIndex } from '../checkpoint/tensor-info.js';
import type { BuiltGraph } from './builder.js';
import { LayerBuilder } from './layers.js';
import { DataType } from './onnx-proto.js';

/**
 * BLIP retrieval as three ONNX graphs, split where work can be reused:
 *
 *   vision    pixel_values -> vision states, normalised ITC image feature   (once per image)
 *   cross_kv  vision states -> per-layer cross-attention keys and values     (once per image, ITM only)
 *   text      input_ids, mask [, cross keys/values] -> ITC text feature or ITM logits
 *
 * Each mirrors the matching forward() of transformers' modeling_blip.py / modeling_blip_text.py.
 * A cross_kv batch of one broadcasts against any caption batch, so one image scores many
 * captions without its states being copied.
 *
 * `dtype` fp16 runs every graph in float16 (pixel_values enter as float16, the cross-attention
 * keys/values pass between the graphs as float16); the outputs read by the library are cast to
 * float32 (exactly), and the ITC normalisation runs in float32 (see LayerBuilder.l2Normalize).
 */

const F = DataType.FLOAT;
const I64 = DataType.INT64;

/** How the graphs compute: `dtype`, and for fp16 whether activations are float16 too (GPU providers) or float32 (CPU). */
export interface GraphPrecision {
  dtype: Dtype;
  activations?: 'fp16' | 'fp32';
  /** Standard MatMul linears, for GPU providers (see GraphBuilder.matmulLinears). */
  matmulLinears?: boolean;
  /** How weight files' links are resolved (see GraphBuilder.realPath); Node passes realpathSync. */
  realPath?: (file: string) => string;
}

function builder(name: string, weights: TensorIndex, label: string, precision: GraphPrecision): LayerBuilder {
  const g = new LayerBuilder(name, weights, label, precision.dtype, precision.activations);
  g.matmulLinears = precision.matmulLinears ?? false;
  if (precision.realPath) g.realPath = precision.realPath;
  return g;
}

export function buildVisionGraph(config: BlipConfig, weights: TensorIndex, label: string, precision: GraphPrecision = { dtype: 'fp32' }): BuiltGraph {
  const v = config.vision_config;
  const g = builder('blip_vision', weights, label, precision);
  const D = v.hidden_size;
  const tokens = visionTokens(v);
  const pixelType = precision.dtype === 'fp16' ? DataType.FLOAT16 : F;
  const pixelsIn = g.input('pixel_values', pixelType, ['batch', v.num_channels, v.image_size, v.image_size]);
  const pixels = pixelType === g.float ? pixelsIn : g.op('Cast', [pixelsIn], { to: g.float });

  // BlipVisionEmbeddings: conv patches, class token first, learned positions.
  const conv = g.op('Conv', [
    pixels,
    g.weight('vision_model.embeddings.patch_embedding.weight', [D, v.num_channels, v.patch_size, v.patch_size], { after: pixels }),
    g.weight('vision_model.embeddings.patch_embedding.bias', [D], { after: pixels }),
  ], { kernel_shape: [v.patch_size, v.patch_size], strides: [v.patch_size, v.patch_size] });
  const patches = g.op('Transpose', [g.op('Reshape', [conv, g.constInt64([0, D, -1])])], { perm: [0, 2, 1] });
  const batch = g.op('Shape', [pixels], { start: 0, end: 1 });
  const clsShape = g.op('Concat', [batch, g.constInt64([1, D])], { axis: 0 });
  const cls = g.op('Expand', [g.weight('vision_model.embeddings.class_embedding', [1, 1, D], { after: pixels, float32: true }), clsShape]);
  let h = g.op('Add', [
    g.op('Concat', [cls, patches], { axis: 1 }),
    g.weight('vision_model.embeddings.position_embedding', [1, tokens, D], { after: pixels, float32: true }),
  ]);

  const heads = v.num_attention_heads;
  for (let i = 0; i < v.num_hidden_layers; i++) {
    const p = `vision_model.encoder.layers.${i}`;
    // Pre-norm block.
    const normed = g.layerNorm(h, `${p}.layer_norm1`, D, v.layer_norm_eps);
    const ctx = g.packedSelfAttention(normed, `${p}.self_attn.qkv`, D, heads);
    h = g.op('Add', [g.linear(ctx, `${p}.self_attn.projection`, D, D), h]);
    const normed2 = g.layerNorm(h, `${p}.layer_norm2`, D, v.layer_norm_eps);
    const mlp = g.linear(g.activation(g.linear(normed2, `${p}.mlp.fc1`, D, v.intermediate_size), v.hidden_act), `${p}.mlp.fc2`, v.intermediate_size, D);
    h = g.op('Add', [mlp, h]);
  }
  const states = g.layerNorm(h, 'vision_model.post_layernorm', D, v.layer_norm_eps);
  g.output(g.toFloat32(states), 'vision_states', F, ['batch', tokens, D]);

  const feat = g.l2Normalize(g.linear(g.selectToken(states, 0), 'vision_proj', D, config.image_text_hidden_size));
  g.output(feat, 'image_embeds', F, ['batch', config.image_text_hidden_size]);
  return g.build();
}

export function buildCrossKVGraph(config: BlipConfig, weights: TensorIndex, label: string, precision: GraphPrecision = { dtype: 'fp32' }): BuiltGraph {
  const t = config.text_config;
  const g = builder('blip_cross_kv', weights, label, precision);
  const tokens = visionTokens(config.vision_config);
  const states = g.fromFloat32(g.input('vision_states', F, ['image_batch', tokens, t.encoder_hidden_size]));
  const heads = t.num_attention_heads;
  const headDim = t.hidden_size / heads;
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const p = `text_encoder.encoder.layer.${i}.crossattention.self`;
    const k = g.linear(states, `${p}.key`, t.encoder_hidden_size, t.hidden_size);
    const v = g.linear(states, `${p}.value`, t.encoder_hidden_size, t.hidden_size);
    const kT = g.op('Transpose', [g.op('Reshape', [k, g.constInt64([0, -1, heads, headDim])])], { perm: [0, 2, 3, 1] });
    g.output(g.toHalf(kT), crossKeyName(i), kvType(precision), ['image_batch', heads, headDim, tokens]);
    g.output(g.toHalf(g.splitHeads(v, heads, headDim)), crossValueName(i), kvType(precision), ['image_batch', heads, tokens, headDim]);
  }
  return g.build();
}

/**
 * Element type of the cross-attention keys/values passed between the graphs: float16 in fp16 even
 * where the graphs compute in float32 (CPU), which halves the 42 MB they take per image for the large model.
 */
function kvType(precision: GraphPrecision): DataType {
  return precision.dtype === 'fp16' ? DataType.FLOAT16 : F;
}

export const crossKeyName = (layer: number): string => `cross_key_t.${layer}`;
export const crossValueName = (layer: number): string => `cross_value.${layer}`;

/**
 * The text encoder in both of its modes, in one graph so the two share one copy of the weights:
 * `use_image` false gives the unimodal pass (ITC: `text_embeds`), true adds cross-attention to
 * the image's keys/values in every layer (ITM: `itm_logits`). The mode is an If per layer around
 * the cross-attention block; a unimodal call feeds dummy keys/values that are never read.
 */
export function buildTextGraph(config: BlipConfig, weights: TensorIndex, label: string, precision: GraphPrecision = { dtype: 'fp32' }): BuiltGraph {
  const t = config.text_config;
  const g = builder('blip_text', weights, label, precision);
  const heads = t.num_attention_heads;
  const headDim = t.hidden_size / heads;
  const useImage = g.input(USE_IMAGE, DataType.BOOL, [1]);
  const cross = Array.from({ length: t.num_hidden_layers }, (_, i) => ({
    kT: g.input(crossKeyName(i), kvType(precision), ['image_batch', heads, headDim, 'image_tokens']),
    v: g.input(crossValueName(i), kvType(precision), ['image_batch', heads, 'image_tokens', headDim]),
  }));
  const states = textEncoder(g, t, { useImage, cross });
  g.output(g.toFloat32(states), 'text_states', F, ['batch', 'seq', t.hidden_size]);
  const cls = g.selectToken(states, 0);
  g.output(g.l2Normalize(g.linear(cls, 'text_proj', t.hidden_size, config.image_text_hidden_size)), 'text_embeds', F, ['batch', config.image_text_hidden_size]);
  g.output(g.toFloat32(g.linear(cls, 'itm_head', t.hidden_size, 2)), 'itm_logits', F, ['batch', 2]);
  return g.build();
}

export const USE_IMAGE = 'use_image';

/** BlipTextModel.forward: embeddings then BERT post-norm layers, optional cross-attention. */
function textEncoder(g: LayerBuilder, t: TextConfig, image: { useImage: string; cross: Array<{ kT: string; v: string }> }): string {
  const H = t.hidden_size;
  const ids = g.input('input_ids', I64, ['batch', 'seq']);
  const mask = g.input('attention_mask', I64, ['batch', 'seq']);

  const seqLen = g.op('Shape', [ids], { start: 1, end: 2 });
  const positions = g.rowsOf('text_encoder.embeddings.position_embeddings.weight', [t.max_position_embeddings, H], (table) => g.op('Slice', [table, g.constInt64([0]), seqLen, g.constInt64([0])]), { float32: true });
  const words = g.rowsOf('text_encoder.embeddings.word_embeddings.weight', [t.vocab_size, H], (table) => g.op('Gather', [table, ids], { axis: 0 }));
  let h = g.layerNorm(g.op('Add', [words, positions]), 'text_encoder.embeddings.LayerNorm', H, t.layer_norm_eps);

  // get_extended_attention_mask: (1 - mask) * -10000 over the key axis, not the dtype minimum.
  const maskF = g.op('Cast', [mask], { to: g.float });
  const additive = g.op('Unsqueeze', [
    g.op('Mul', [g.op('Sub', [g.constFloat([1]), maskF]), g.constFloat([-10000])]),
    g.constInt64([1, 2]),
  ]);

  const heads = t.num_attention_heads;
  const headDim = H / heads;
  const divisor = { div: Math.sqrt(headDim) };
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const p = `text_encoder.encoder.layer.${i}`;
    const q = g.splitHeads(g.linear(h, `${p}.attention.self.query`, H, H), heads, headDim);
    const kT = g.op('Transpose', [g.op('Reshape', [g.linear(h, `${p}.attention.self.key`, H, H), g.constInt64([0, -1, heads, headDim])])], { perm: [0, 2, 3, 1] });
    const v = g.splitHeads(g.linear(h, `${p}.attention.self.value`, H, H), heads, headDim);
    const selfCtx = g.mergeHeads(g.attention(q, kT, v, divisor, additive), H);
    h = g.layerNorm(g.op('Add', [g.linear(selfCtx, `${p}.attention.output.dense`, H, H), h]), `${p}.attention.output.LayerNorm`, H, t.layer_norm_eps);

    const selfOut = h;
    const withImage = g.subgraph(`cross${i}`, () => {
      // The image mask is all ones, so its additive term is zero and omitted.
      const cq = g.splitHeads(g.linear(selfOut, `${p}.crossattention.self.query`, H, H), heads, headDim);
      const crossCtx = g.mergeHeads(g.attention(cq, g.fromHalf(image.cross[i].kT), g.fromHalf(image.cross[i].v), divisor), H);
      return [g.layerNorm(g.op('Add', [g.linear(crossCtx, `${p}.crossattention.output.dense`, H, H), selfOut]), `${p}.crossattention.output.LayerNorm`, H, t.layer_norm_eps)];
    });
    const textOnly = g.subgraph(`nocross${i}`, () => [selfOut]);
    h = g.op('If', [image.useImage], { then_branch: { graph: withImage }, else_branch: { graph: textOnly } });

    const inter = g.activation(g.linear(h, `${p}.intermediate.dense`, H, t.intermediate_size), t.hidden_act);
    h = g.layerNorm(g.op('Add', [g.linear(inter, `${p}.output.dense`, t.intermediate_size, H), h]), `${p}.output.LayerNorm`, H, t.layer_norm_eps);
  }
  return h;
}
