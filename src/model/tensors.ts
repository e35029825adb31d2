import { CheckpointError } from '../errors.js';

/** A plain row-major tensor: what the processor produces and the model consumes and returns. */
export interface Tensor<T extends Float32Array | BigInt64Array = Float32Array> {
  data: T;
  dims: number[];
}

/** The processor's output, named like transformers' BatchEncoding keys. */
export interface BlipInputs {
  pixelValues?: Tensor<Float32Array>;
  inputIds?: Tensor<BigInt64Array>;
  attentionMask?: Tensor<BigInt64Array>;
}

export function rows<T extends Float32Array | BigInt64Array>(t: Tensor<T>, start: number, end: number): Tensor<T> {
  const rowSize = t.dims.slice(1).reduce((a, b) => a * b, 1);
  return { data: t.data.subarray(start * rowSize, end * rowSize) as T, dims: [end - start, ...t.dims.slice(1)] };
}

/** Softmax over two logits, index 1: the ITM "match" probability. */
export function matchProbability(l0: number, l1: number): number {
  const m = Math.max(l0, l1);
  const e0 = Math.exp(l0 - m);
  const e1 = Math.exp(l1 - m);
  return e1 / (e0 + e1);
}

/**
 * Refuses a model output holding NaN or ±Inf. Such values come from damaged weights (or an
 * overflow they cause) and would be printed as `null` scores or sort arbitrarily; better one
 * clear error than silent nonsense. `source` names the checkpoint, `what` the output.
 */
export function assertFinite(data: Float32Array, source: string, what: string): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new CheckpointError(source, `the checkpoint produced NaN/Inf (${what}); its weights are damaged or hold non-finite values`);
    }
  }
}
