/**
 * Which linear layers the int8 dtype quantizes: every linear of both towers' encoder layers
 * (attention projections, cross-attention, MLPs), which carry nearly all of the FLOPs, but not
 * the three heads (`vision_proj`, `text_proj`, `itm_head`): they are a rounding error of the
 * run time and feed the scores directly, so their rounding would reach the scores unaveraged.
 * The patch embedding (a Conv), the embeddings, layer norms and the attention products
 * (activation x activation) stay float32 in every case.
 */
const FLOAT_HEADS = new Set(['vision_proj', 'text_proj', 'itm_head']);

export function quantizesLinear(prefix: string): boolean {
  return !FLOAT_HEADS.has(prefix);
}
