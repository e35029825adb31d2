import { BlipError } from '../errors.js';
import type { Dtype } from '../checkpoint/dtype.js';

/** The Vulkan ICD of SwiftShader (a CPU implementation) that Debian's chromium-common installs. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export const WEBGPU_NO_ADAPTER =
  'no WebGPU adapter found: install your GPU\'s Vulkan driver (NVIDIA, AMD or Intel), or to emulate one on the CPU '
  + `install libvulkan1 and chromium-common and set VK_ICD_FILENAMES=${SWIFTSHADER_ICD}; or use --device cpu`;

export const WEBGPU_NO_F16 =
  'this WebGPU adapter has no shader-f16 support, which --dtype fp16 needs (SwiftShader has none): use --dtype fp32 or int8 on webgpu, or --device cpu / cuda for fp16';

const CUDA_HINT = 'the CUDA provider needs onnxruntime-node installed with its CUDA binaries and CUDA 12 + cuDNN 9 (see the README section "GPU"), or use --device cpu';

/** Whether an onnxruntime error says the WebGPU device lacks float16 shaders. */
export function isMissingShaderF16(e: unknown): boolean {
  return /requires f16 but the device does not support it/.test(String((e as Error)?.message ?? e));
}

/**
 * onnxruntime's session errors as one line that says what to install or choose. Its own messages
 * span lines and name source files of onnxruntime; only their last clause is kept.
 */
export function providerError(graph: string, ep: string, dtype: Dtype, e: unknown): BlipError {
  const message = String((e as Error)?.message ?? e);
  let text: string;
  if (ep === 'webgpu' && /No supported adapters|Failed to get a WebGPU adapter/i.test(message)) text = WEBGPU_NO_ADAPTER;
  else if (ep === 'webgpu' && dtype === 'fp16' && isMissingShaderF16(e)) text = WEBGPU_NO_F16;
  else if (ep === 'cuda') {
    return new BlipError(`could not create the ${graph} session on cuda (${CUDA_HINT}): ${lastClause(message)}`, { cause: e });
  } else text = lastClause(message);
  const where = graph === 'probe' ? `--device ${ep}` : `could not create the ${graph} session on ${ep}`;
  return new BlipError(`${where}: ${text}`, { cause: e });
}

function lastClause(message: string): string {
  const line = message.split('\n').map((l) => l.trim()).filter(Boolean)[0] ?? message;
  // "/onnxruntime_src/.../file.cc:136 function ... was false. Failed to ..." -> the readable end.
  return line.replace(/^\/onnxruntime_src\/\S+\s+/, '').replace(/^.*?(was false\.|\] :)\s*/, '').trim() || line;
}
