import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Dtype } from '../checkpoint/dtype.js';
import { BlipError } from '../errors.js';
import { DataType, encodeModel } from '../graph/onnx-proto.js';
import { providerError } from './provider-errors.js';

/**
 * Checks in a child process that onnxruntime finds a WebGPU adapter (with shader-f16 for fp16).
 * Dawn and the Vulkan loader print their diagnostics straight to the process's stderr, which the
 * CLI cannot silence in-process; in a child they are captured and dropped, and a failure becomes
 * one line. Costs a Node start and an adapter request (~0.5 s), so only the CLI uses it. The
 * probe is one MatMul: in float16, it is what fails on adapters without shader-f16.
 */
export async function probeWebGpu(dtype: Dtype): Promise<void> {
  const ortUrl = pathToFileURL(createRequire(import.meta.url).resolve('onnxruntime-node')).href;
  const f16 = dtype === 'fp16';
  const type = f16 ? DataType.FLOAT16 : DataType.FLOAT;
  const model = Buffer.from(encodeModel({
    producerName: 'blip-itm', producerVersion: '1', opsets: [{ domain: '', version: 17 }],
    graph: {
      name: 'probe', nodes: [{ opType: 'MatMul', inputs: ['x', 'x'], outputs: ['y'], name: 'm' }], initializers: [],
      inputs: [{ name: 'x', elemType: type, shape: [2, 2] }], outputs: [{ name: 'y', elemType: type, shape: [2, 2] }],
    },
  })).toString('base64');
  const input = f16 ? "'float16', new Uint16Array(4).fill(0x3c00)" : "'float32', new Float32Array(4).fill(1)";
  const script = `
    const ort = await import(${JSON.stringify(ortUrl)});
    try {
      const s = await ort.InferenceSession.create(Buffer.from('${model}', 'base64'), { executionProviders: ['webgpu'], logSeverityLevel: 4 });
      await s.run({ x: new ort.Tensor(${input}, [2, 2]) });
      process.stdout.write(JSON.stringify({ ok: true }));
    } catch (e) {
      process.stdout.write(JSON.stringify({ ok: false, message: String((e && e.message) || e) }));
    }`;
  const out = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000, maxBuffer: 1 << 20 }, (_err, stdout) => resolve(stdout));
  });
  let result: { ok: boolean; message?: string };
  try {
    result = JSON.parse(out);
  } catch {
    throw new BlipError('the WebGPU check crashed; run with --device cpu, or check the Vulkan driver');
  }
  if (!result.ok) throw providerError('probe', 'webgpu', dtype, new Error(result.message));
}

/**
 * libwayland, which Dawn loads, prints "XDG_RUNTIME_DIR is invalid or not set" twice when the
 * variable is unset (headless servers, containers). A private empty folder silences it; there is
 * no Wayland socket in it to connect to. CLI only: a library must not change its host's environment.
 */
export function quietWayland(): void {
  if (!process.env.XDG_RUNTIME_DIR) process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'blip-itm-xdg-'));
}
