import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { cardJob } from './card-job.js';

/**
 * fp32 against int8 and fp16, interleaved: each round times the vision encoder (batch 1) and the
 * card job once per dtype, so load from other processes on a shared machine hits all dtypes alike
 * and the ratios of the medians stay fair. Uses the checkpoint `npm run bench` writes, and the
 * weights cache next to it. One JSON line.
 *
 *   node --import tsx bench/precision-ab.ts [rounds]
 */
const rounds = Number(process.argv[2] ?? 5);
const dir = process.env.BLIP_BENCH_DIR ?? join(tmpdir(), 'blip-itm-bench-large-coco-random');
const weightsCacheDir = `${dir}-weights-cache`;
const image = 'test/fixtures/images/coco_000000039769.png';
const dtypes = ['fp32', 'int8', 'fp16'] as const;
const models = Object.fromEntries(await Promise.all(dtypes.map(async (d) => [d, await BlipForImageTextRetrieval.fromPretrained(dir, { dtype: d, weightsCacheDir })]))) as Record<(typeof dtypes)[number], BlipForImageTextRetrieval>;
const pixels = await models.fp32.processor.preprocessImages([image]);
const times: Record<string, number[]> = {};
const time = async (key: string, fn: () => Promise<unknown>) => {
  const t0 = performance.now();
  await fn();
  (times[key] ??= []).push((performance.now() - t0) / 1000);
};
for (const d of dtypes) { await models[d].encodeImages(pixels); await cardJob(models[d], image); } // warm-up
for (let r = 0; r < rounds; r++) {
  for (const d of dtypes) await time(`vision_${d}`, () => models[d].encodeImages(pixels));
  for (const d of dtypes) await time(`card_${d}`, () => cardJob(models[d], image));
}
for (const d of dtypes) await models[d].dispose();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
process.stdout.write(`${JSON.stringify({
  rounds, ...m,
  int8_vision_speedup: m.vision_fp32 / m.vision_int8, int8_card_job_ratio: m.card_int8 / m.card_fp32,
  fp16_vision_ratio: m.vision_fp16 / m.vision_fp32, fp16_card_job_ratio: m.card_fp16 / m.card_fp32,
})}\n`);
