import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { agreement, scoreGrid } from './agreement.js';
import { cardJob } from './card-job.js';
import { benchCheckpoint } from './random-checkpoint.js';

/**
 * The large random checkpoint on GPU providers in fp32 and fp16: load, vision seconds per image
 * (batch 1 and 8), the card job, and fp16's agreement with fp32 on the same provider. One JSON
 * line. Used by bench/device.sh.
 *
 *   node --import tsx bench/device-bench.ts webgpu,cuda [runs]
 */
const providers = (process.argv[2] ?? 'webgpu').split(',') as Array<'webgpu' | 'cuda'>;
const runs = Number(process.argv[3] ?? 5);
const dir = await benchCheckpoint();
const image = 'test/fixtures/images/coco_000000039769.png';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function timed(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    t.push((performance.now() - t0) / 1000);
  }
  return median(t);
}

const out: Array<Record<string, unknown>> = [];
for (const executionProvider of providers) {
  let reference: Awaited<ReturnType<typeof scoreGrid>> | undefined;
  for (const dtype of ['fp32', 'fp16'] as const) {
    const row: Record<string, unknown> = { provider: executionProvider, dtype };
    try {
      const t0 = performance.now();
      const model = await BlipForImageTextRetrieval.fromPretrained(dir, { executionProvider, dtype, visionBatchSize: 8 });
      row.load_s = (performance.now() - t0) / 1000;
      try {
        const one = await model.processor.preprocessImages([image]);
        const eight = { data: new Float32Array(8 * one.data.length), dims: [8, ...one.dims.slice(1)] };
        for (let i = 0; i < 8; i++) eight.data.set(one.data, i * one.data.length);
        row.vision_s_per_image_b1 = await timed(() => model.encodeImages(one));
        row.vision_s_per_image_b8 = (await timed(() => model.encodeImages(eight))) / 8;
        row.card_job_1x10_s = await timed(() => cardJob(model, image));
        const grid = await scoreGrid(model);
        if (dtype === 'fp32') reference = grid;
        else if (reference) {
          const a = agreement(reference, grid);
          row.max_abs_prob_diff_vs_fp32 = a.maxAbsProbDiff;
          row.max_abs_cosine_diff_vs_fp32 = a.maxAbsCosineDiff;
          row.rank_top1_agreement = a.top1Agreement;
        }
      } finally {
        await model.dispose();
      }
    } catch (e) {
      row.error = String((e as Error).message ?? e).split('\n')[0];
    }
    out.push(row);
  }
}
process.stdout.write(`${JSON.stringify({ bench: out, runs })}\n`);
