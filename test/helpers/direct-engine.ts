import type { Engine, PairOutcome, PairRequest } from '../../src/engine/types.js';
import type { BlipForImageTextRetrieval } from '../../src/model/blip-itm.js';
import { referenceScores } from './model-reference.js';

/**
 * TEST DOUBLE, not the scoring engine: scores each pair with direct model calls, one at a time,
 * and implements only `scorePairs`. It lets the filter's own tests (readers, parts, manifest,
 * resume) run without the engine's batching; the acceptance tests use the real ScoringEngine.
 */
export function directEngine(model: BlipForImageTextRetrieval, itmTextStart: 'cls' | 'enc' = 'cls'): Engine & { pairsScored: number } {
  const unsupported = () => Promise.reject(new Error('directEngine is a test double: only scorePairs'));
  const engine = {
    pairsScored: 0,
    score: unsupported, rank: unsupported, embedImages: unsupported, embedTexts: unsupported,
    async scorePairs(pairs: PairRequest[]): Promise<PairOutcome[]> {
      const out: PairOutcome[] = [];
      for (const p of pairs) {
        try {
          const [s] = await referenceScores(model, 'bytes' in p.image ? p.image.bytes : p.image.path, [p.text], itmTextStart);
          out.push({ ok: true, ...s });
        } catch (e) {
          out.push({ ok: false, error: (e as Error).message.split('\n')[0] });
        }
        engine.pairsScored++;
      }
      return out;
    },
    stats: { queueDepth: 0, cacheEntries: 0, cacheBytes: 0, cacheHits: 0, cacheMisses: 0 },
    async close() {},
  };
  return engine;
}
