import type { TextConfig } from '../checkpoint/config.js';
import { UsageError } from '../errors.js';
import type { Tensor } from '../tensor.js';

/**
 * Checks the token tensors a caller hands to the model before anything runs: shapes, the length
 * limit of the position embedding and ids inside the vocabulary; fills in an all-ones mask.
 */
export function checkTextInputs(
  inputs: { inputIds: Tensor<BigInt64Array>; attentionMask?: Tensor<BigInt64Array> },
  t: TextConfig,
): {
  inputIds: Tensor<BigInt64Array>;
  attentionMask: Tensor<BigInt64Array>;
} {
  const { inputIds } = inputs;
  const d = inputIds.dims;
  if (d.length !== 2 || d[0] < 1 || d[1] < 1 || inputIds.data.length !== d[0] * d[1]) {
    throw new UsageError(`inputIds must have shape [B, L] with B, L >= 1, got [${d.join(', ')}]`);
  }
  if (d[1] > t.max_position_embeddings) {
    throw new UsageError(`inputIds has ${d[1]} tokens; this model takes at most ${t.max_position_embeddings} (tokenize with truncation)`);
  }
  for (const id of inputIds.data) {
    if (id < 0n || id >= BigInt(t.vocab_size)) throw new UsageError(`inputIds contains ${id}, outside the vocabulary [0, ${t.vocab_size})`);
  }
  const attentionMask = inputs.attentionMask ?? { data: new BigInt64Array(inputIds.data.length).fill(1n), dims: [...d] };
  if (attentionMask.dims.length !== 2 || attentionMask.dims[0] !== d[0] || attentionMask.dims[1] !== d[1]) {
    throw new UsageError(`attentionMask must have the shape of inputIds [${d.join(', ')}], got [${attentionMask.dims.join(', ')}]`);
  }
  return { inputIds, attentionMask };
}

/** `times` copies of row 0: one caption paired with every image. */
export function repeatRow(t: Tensor<BigInt64Array>, times: number): Tensor<BigInt64Array> {
  const L = t.dims[1];
  const data = new BigInt64Array(times * L);
  for (let i = 0; i < times; i++) data.set(t.data.subarray(0, L), i * L);
  return { data, dims: [times, L] };
}
