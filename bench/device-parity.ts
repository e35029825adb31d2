import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { matchProbability } from '../src/tensor.js';
import { FIXTURES, goldenFile, manifestEntry, maxAbsDiff, textById } from '../test/helpers/goldens.js';

/**
 * The fixture models' golden pairs on GPU providers, against the transformers fp32 goldens:
 * fp32 within the CPU tolerances (ITM logits 1e-4, cosine 1e-5), fp16 within 2e-3 (probability
 * and cosine). One JSON line. Used by bench/device.sh.
 *
 *   node --import tsx bench/device-parity.ts webgpu,cuda
 */
const providers = (process.argv[2] ?? 'webgpu').split(',') as Array<'webgpu' | 'cuda'>;
const probs = (l: ArrayLike<number>) => Array.from({ length: l.length / 2 }, (_, i) => matchProbability(l[2 * i], l[2 * i + 1]));
const results: Array<Record<string, unknown>> = [];
for (const executionProvider of providers) {
  for (const dtype of ['fp32', 'fp16'] as const) {
    for (const name of ['tiny', 'tiny-384']) {
      const goldenName = `model_${name}.safetensors`;
      const entry = manifestEntry(goldenName, 'itm/logits');
      const row: Record<string, unknown> = { provider: executionProvider, dtype, model: name };
      try {
        const model = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/${name}`, { executionProvider, dtype });
        try {
          const inputs = await model.processor.call({ images: entry.images!.map((p) => `${FIXTURES}/${p}`), text: entry.texts!.map(textById) });
          const itm = await model.forward(inputs);
          const cos = await model.forward(inputs, { useItmHead: false });
          const golden = await goldenFile(goldenName);
          const gItm = (await golden('itm/logits')).data as Float32Array;
          row.itm_logit_max_abs_diff = maxAbsDiff(itm.data, gItm);
          row.prob_max_abs_diff = maxAbsDiff(probs(itm.data), probs(gItm));
          row.cosine_max_abs_diff = maxAbsDiff(cos.data, (await golden('cos/matrix')).data as Float32Array);
          row.pass = dtype === 'fp32'
            ? (row.itm_logit_max_abs_diff as number) <= 1e-4 && (row.cosine_max_abs_diff as number) <= 1e-5
            : (row.prob_max_abs_diff as number) <= 2e-3 && (row.cosine_max_abs_diff as number) <= 2e-3;
        } finally {
          await model.dispose();
        }
      } catch (e) {
        row.pass = false;
        row.error = String((e as Error).message ?? e).split('\n')[0];
      }
      results.push(row);
    }
  }
}
process.stdout.write(`${JSON.stringify({ parity: results })}\n`);
