import type { Dtype } from '../checkpoint/dtype.js';
import type { BuiltGraph } from '../graph/builder.js';
import { assertWebGpuShaderF16, GraphSession, type RuntimeOptions } from '../runtime/session.js';

/** The three sessions of one model. */
export interface Sessions {
  vision: GraphSession;
  text: GraphSession;
  crossKV: GraphSession;
}

/**
 * Creates the sessions side by side: creation is dominated by onnxruntime pre-packing the
 * weights, single-threaded per session. ORT maps the checkpoint and frees each mapping once a
 * weight is packed, so this adds no peak memory. If one fails, the others are released.
 */
export async function createSessions(graphs: Record<keyof Sessions, BuiltGraph>, options: RuntimeOptions & { dtype: Dtype }): Promise<Sessions> {
  if (options.executionProvider === 'webgpu' && options.dtype === 'fp16') await assertWebGpuShaderF16();
  const keys = Object.keys(graphs) as Array<keyof Sessions>;
  const settled = await Promise.allSettled(keys.map((k) => GraphSession.create(graphs[k], options)));
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) {
    await Promise.all(settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value.dispose()] : [])));
    throw failure.reason;
  }
  return Object.fromEntries(keys.map((k, i) => [k, (settled[i] as PromiseFulfilledResult<GraphSession>).value])) as unknown as Sessions;
}
