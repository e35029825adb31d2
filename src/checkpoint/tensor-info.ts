/** Element types a checkpoint tensor can have, named as safetensors names them. */
export type TensorDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<TensorDType, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/**
 * Where one tensor's bytes lie inside a checkpoint file. The model graphs point ONNX external
 * data at exactly this range, so the weights are never copied. Data is little-endian, C-order
 * (row-major, contiguous).
 */
export interface TensorInfo {
  name: string;
  dtype: TensorDType;
  shape: number[];
  /** Absolute path of the file holding the bytes. */
  file: string;
  /** Absolute byte offset of the first element inside `file`. */
  offset: number;
  /** Byte length = product(shape) * DTYPE_BYTES[dtype]. */
  length: number;
}

/** A checkpoint's tensors by name, whichever file format they came from. */
export type TensorIndex = Map<string, TensorInfo>;
