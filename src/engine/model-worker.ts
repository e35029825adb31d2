import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { BlipForImageTextRetrieval, type FromPretrainedOptions } from '../model/blip-itm.js';
import { inProcessBackend, type ModelBackend } from './backend.js';
import type { ImageEncoding } from './image-cache.js';

/**
 * The model's thread (a one-thread piscina pool, see model-host.ts): loads the model from a
 * local folder and answers the engine's batch runs. onnxruntime blocks the thread it runs on;
 * here that is this one. Errors come back as values, so that their class names survive.
 */

export interface ModelWorkerData {
  dir: string;
  options: Pick<FromPretrainedOptions, 'executionProvider' | 'intraOpThreads' | 'visionBatchSize' | 'textBatchSize'>;
}

export type ModelRequest =
  | { op: 'load' }
  | { op: 'vision'; pixels: Float32Array[] }
  | { op: 'text'; ids: number[][] }
  /** States are sent once per distinct image of the batch; pairs point into them. */
  | { op: 'itm'; start: 'cls' | 'enc'; images: Array<{ key: string; states: Float32Array }>; pairs: Array<{ image: number; ids: number[] }> }
  | { op: 'dispose' };

export type ModelReply =
  | { ok: true; result: unknown; visionRuns: number }
  | { ok: false; error: { name: string; message: string } };

let loaded: Promise<{ model: BlipForImageTextRetrieval; backend: ModelBackend }> | undefined;

function load(): Promise<{ model: BlipForImageTextRetrieval; backend: ModelBackend }> {
  const { dir, options } = workerData as ModelWorkerData;
  loaded ??= BlipForImageTextRetrieval.fromPretrained(dir, options).then((model) => ({ model, backend: inProcessBackend(model) }));
  return loaded;
}

export default async function run(request: ModelRequest): Promise<unknown> {
  try {
    const { model, backend } = await load();
    const { result, transfer } = await handle(model, backend, request);
    const reply: ModelReply = { ok: true, result, visionRuns: model.visionRuns };
    return transfer.length > 0 ? move({ [transferableSymbol]: transfer, [valueSymbol]: reply } as never) : reply;
  } catch (e) {
    return { ok: false, error: e instanceof Error ? { name: e.name, message: e.message } : { name: 'Error', message: String(e) } } satisfies ModelReply;
  }
}

async function handle(model: BlipForImageTextRetrieval, backend: ModelBackend, m: ModelRequest): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  switch (m.op) {
    case 'load':
      return { result: null, transfer: [] };
    case 'vision': {
      const out = await backend.vision(m.pixels);
      return { result: out, transfer: out.flatMap((o) => [o.states.buffer as ArrayBuffer, o.embeds.buffer as ArrayBuffer]) };
    }
    case 'text': {
      const out = await backend.text(m.ids);
      return { result: out, transfer: out.map((e) => e.buffer as ArrayBuffer) };
    }
    case 'itm': {
      const images: ImageEncoding[] = m.images.map((i) => ({ key: i.key, states: i.states, embeds: new Float32Array(0) }));
      return { result: await backend.itm(m.pairs.map((p) => ({ image: images[p.image], ids: p.ids })), m.start), transfer: [] };
    }
    case 'dispose':
      await model.dispose();
      loaded = undefined;
      return { result: null, transfer: [] };
  }
}
