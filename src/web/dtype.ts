/**
 * The browser's precision choice. Defaults follow what each device runs well: int8 on WASM
 * (DynamicQuantizeMatMul, a quarter of fp32's weight memory, which is what fits wasm32's 4 GiB
 * heap comfortably) and fp16 on WebGPU where the adapter has `shader-f16`; on an adapter without
 * it (SwiftShader, some integrated GPUs) the default falls back to fp32, and an explicit fp16 is
 * refused with a one-line error rather than left to fail inside onnxruntime.
 */
import { type Dtype, parseDtype } from '../checkpoint/dtype.js';
import { UsageError } from '../errors.js';
import type { WebDevice } from './session.js';

export const WEB_NO_SHADER_F16 =
  'dtype "fp16" on device "webgpu" needs the adapter feature "shader-f16", which this browser\'s WebGPU adapter lacks (SwiftShader has none): use dtype "fp32" or "int8", or device "wasm"';

/** Whether this browser's WebGPU adapter offers float16 shaders. */
export async function webgpuHasShaderF16(): Promise<boolean> {
  type Gpu = { requestAdapter(): Promise<{ features: ReadonlySet<string> } | null> };
  const gpu = typeof navigator !== 'undefined' ? (navigator as Navigator & { gpu?: Gpu }).gpu : undefined;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  return adapter?.features.has('shader-f16') ?? false;
}

/**
 * The dtype a model loads in: the requested one, or the default for `device` (the device the
 * model's graphs run on unless overridden per graph; any graph on WebGPU makes fp16 need shader-f16).
 */
export async function resolveWebDtype(requested: unknown, device: WebDevice, devices: readonly WebDevice[]): Promise<Dtype> {
  // Undefined stays undefined here: the browser's default depends on the device.
  const dtype = requested === undefined ? undefined : parseDtype(requested);
  const onGpu = devices.includes('webgpu');
  if (dtype === 'fp16' && onGpu && !(await webgpuHasShaderF16())) throw new UsageError(WEB_NO_SHADER_F16);
  if (dtype !== undefined) return dtype;
  if (device === 'wasm') return 'int8';
  return (await webgpuHasShaderF16()) ? 'fp16' : 'fp32';
}
