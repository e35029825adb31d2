import type { Engine, EngineOptions } from '../engine/types.js';
import type { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import type { LazyModel, ModelIdentity } from '../retrieval/model-identity.js';

/** Builds a scoring engine over a loaded model (the engine module's constructor, or a test's). */
export type EngineFactory = (model: BlipForImageTextRetrieval, options: EngineOptions) => Engine;

/**
 * A model known by its identity (computed without loading it), loaded on the first engine asked
 * for, with one engine per ITM text start (an engine option, while it is a per-run option here).
 */
export interface ModelBackend {
  readonly identity: ModelIdentity;
  engine(itmTextStart: 'cls' | 'enc'): Promise<Engine>;
  /** Closes the engines and disposes the model. */
  close(): Promise<void>;
}

export function modelBackend(lazy: LazyModel, createEngine: EngineFactory, engineOptions: EngineOptions = {}): ModelBackend {
  let model: Promise<BlipForImageTextRetrieval> | undefined;
  const engines = new Map<string, Engine>();
  return {
    identity: lazy.identity,
    async engine(itmTextStart) {
      model ??= lazy.load();
      const m = await model;
      let engine = engines.get(itmTextStart);
      if (!engine) {
        engine = createEngine(m, { ...engineOptions, itmTextStart });
        engines.set(itmTextStart, engine);
      }
      return engine;
    },
    async close() {
      for (const e of engines.values()) await e.close();
      engines.clear();
      if (model) await (await model).dispose();
      model = undefined;
    },
  };
}
