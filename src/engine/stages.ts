import { visionTokens } from '../checkpoint/config.js';
import type { BlipForImageTextRetrieval, ImageEncodings } from '../model/blip-itm.js';
import type { Tensor } from '../tensor.js';
import type { ImageEncoding } from './image-cache.js';

/**
 * The batch functions of the engine's three model stages: each takes the inputs gathered from
 * all callers and returns one output per input, in order. They only reshape: every number
 * comes from the model's own methods, the same ones `blip-itm score` calls.
 */

/** Images whose cross-attention keys/values are computed in one run on the rows path (~42 MB each for ViT-L). */
export const ROWS_PER_KV_RUN = 4;

export interface VisionOutput {
  states: Float32Array;
  embeds: Float32Array;
}

/** Pixel values [3, H, W] per image → states and ITC features per image (each its own copy, so the cache holds no batch buffer). */
export function visionStage(model: BlipForImageTextRetrieval): (pixels: Float32Array[]) => Promise<VisionOutput[]> {
  const v = model.config.vision_config;
  const perImage = v.num_channels * v.image_size * v.image_size;
  return async (pixels) => {
    const batch = new Float32Array(pixels.length * perImage);
    pixels.forEach((p, i) => batch.set(p, i * perImage));
    const enc = await model.encodeImages({ data: batch, dims: [pixels.length, v.num_channels, v.image_size, v.image_size] });
    const S = visionTokens(v) * v.hidden_size;
    const E = model.config.image_text_hidden_size;
    return pixels.map((_, i) => ({
      states: enc.states.data.slice(i * S, (i + 1) * S),
      embeds: enc.embeds.data.slice(i * E, (i + 1) * E),
    }));
  };
}

/** Token ids per caption (unpadded) → ITC features per caption. */
export function textStage(model: BlipForImageTextRetrieval): (ids: number[][]) => Promise<Float32Array[]> {
  const E = model.config.image_text_hidden_size;
  return async (ids) => {
    const enc = await model.encodeTexts(padRows(model, ids));
    return ids.map((_, i) => enc.embeds.data.slice(i * E, (i + 1) * E));
  };
}

export interface ItmInput {
  image: ImageEncoding;
  ids: number[];
}

/**
 * (image, caption) pairs → ITM logits per pair. Pairs sharing an image (by content key, across
 * callers) take the per-image path: its keys/values computed once and broadcast over its
 * captions. Images with a single pair are stacked as rows, each row with its own keys/values.
 */
export function itmStage(model: BlipForImageTextRetrieval, itmTextStart: 'cls' | 'enc'): (pairs: ItmInput[]) => Promise<Array<[number, number]>> {
  const v = model.config.vision_config;
  const tokens = visionTokens(v);
  const wrap = (states: Float32Array, count: number): ImageEncodings => ({
    count,
    states: { data: states, dims: [count, tokens, v.hidden_size] },
    // Not read by ITM; the model's type wants them.
    embeds: { data: new Float32Array(0), dims: [count, 0] },
    crossKV: new Array(count).fill(undefined),
  });
  return async (pairs) => {
    const out = new Array<[number, number]>(pairs.length);
    const groups = new Map<string, number[]>();
    pairs.forEach((p, k) => {
      const members = groups.get(p.image.key);
      if (members) members.push(k);
      else groups.set(p.image.key, [k]);
    });
    const singles: number[] = [];
    for (const members of groups.values()) {
      if (members.length === 1) {
        singles.push(members[0]);
        continue;
      }
      const logits = await model.itmForImage(wrap(pairs[members[0]].image.states, 1), 0, padRows(model, members.map((k) => pairs[k].ids)), { itmTextStart });
      members.forEach((k, r) => (out[k] = [logits.data[2 * r], logits.data[2 * r + 1]]));
    }
    if (singles.length > 0) {
      const S = pairs[singles[0]].image.states.length;
      const states = new Float32Array(singles.length * S);
      singles.forEach((k, r) => states.set(pairs[k].image.states, r * S));
      const logits = await model.itmRows(wrap(states, singles.length), padRows(model, singles.map((k) => pairs[k].ids)), { itmTextStart, rowsPerRun: ROWS_PER_KV_RUN });
      singles.forEach((k, r) => (out[k] = [logits.data[2 * r], logits.data[2 * r + 1]]));
    }
    return out;
  };
}

/** Pads id rows to the longest, on the tokenizer's padding side, as its batch call does. */
export function padRows(model: BlipForImageTextRetrieval, ids: number[][]): { inputIds: Tensor<BigInt64Array>; attentionMask: Tensor<BigInt64Array> } {
  const tokenizer = model.processor.tokenizer;
  const width = ids.reduce((m, row) => Math.max(m, row.length), 0);
  const inputIds = new BigInt64Array(ids.length * width).fill(BigInt(tokenizer.padTokenId));
  const attentionMask = new BigInt64Array(ids.length * width);
  const left = tokenizer.settings.paddingSide === 'left';
  ids.forEach((row, r) => {
    const offset = r * width + (left ? width - row.length : 0);
    row.forEach((id, c) => {
      inputIds[offset + c] = BigInt(id);
      attentionMask[offset + c] = 1n;
    });
  });
  return { inputIds: { data: inputIds, dims: [ids.length, width] }, attentionMask: { data: attentionMask, dims: [ids.length, width] } };
}
