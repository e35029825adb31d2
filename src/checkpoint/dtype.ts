import { UsageError } from '../errors.js';

/**
 * The precision a model runs in (transformers.js's names):
 * - `fp32`: the checkpoint's weights as float32, read in place;
 * - `fp16`: weights and activations in float16 end to end (`torch_dtype=torch.float16`);
 * - `int8`: linear layers with int8 weights per output channel and activations quantized per
 *   call (dynamic quantization), everything else float32. `q8` is accepted as an alias.
 */
export type Dtype = 'fp32' | 'fp16' | 'int8';

export const DTYPES: readonly Dtype[] = ['fp32', 'fp16', 'int8'];

/** `value` as a Dtype (`q8` -> `int8`; undefined -> fp32); anything else is a usage error naming `what`. */
export function parseDtype(value: unknown, what = 'dtype'): Dtype {
  if (value === undefined) return 'fp32';
  if (value === 'q8') return 'int8';
  if (typeof value === 'string' && (DTYPES as readonly string[]).includes(value)) return value as Dtype;
  throw new UsageError(`${what} must be one of ${DTYPES.join(', ')} (or q8 for int8), got ${JSON.stringify(value)}`);
}
