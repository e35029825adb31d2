import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { build } from 'esbuild';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { readBlipConfig } from '../src/checkpoint/config.js';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import type { Tensor } from '../src/tensor.js';
import { measureGemmGflops } from './gemm.js';
import { visionFlopsPerImage } from './flops.js';
import { writeRandomCheckpoint } from './random-checkpoint.js';
import { cardJob } from './card-job.js';
import { peakRssMb } from './peak-rss.js';
import { agreement, scoreGrid } from './agreement.js';

/**
 * npm run bench [-- --json] [--runs N] [--threads N]
 *
 * Random-weight checkpoint with the exact tensor names and shapes of Salesforce/blip-itm-large-coco,
 * written once into the OS temp folder (BLIP_BENCH_DIR overrides), then medians of N runs after
 * a warm-up. See docs/performance.md.
 */
const args = process.argv.slice(2);
const json = args.includes('--json');
const runs = Number(argValue('--runs') ?? 5);
const threads = argValue('--threads') ? Number(argValue('--threads')) : undefined;
const log = (s: string) => { if (!json) process.stderr.write(`${s}\n`); };

function argValue(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeRuns(fn: () => Promise<unknown>): Promise<number> {
  await fn(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

const REF = 'test/fixtures/reference-configs';
const dir = process.env.BLIP_BENCH_DIR ?? join(tmpdir(), 'blip-itm-bench-large-coco-random');
log(`checkpoint: ${dir} (random weights, real blip-itm-large-coco layout)`);
await writeRandomCheckpoint(dir, JSON.parse(readFileSync(`${REF}/blip-itm-large-coco.config.json`, 'utf8')), {
  'preprocessor_config.json': `${REF}/blip-itm-large-coco.preprocessor_config.json`,
  'tokenizer_config.json': `${REF}/blip-itm-large-coco.tokenizer_config.json`,
  'special_tokens_map.json': `${REF}/blip-itm-large-coco.special_tokens_map.json`,
  'vocab.txt': 'test/fixtures/models/tiny/vocab.txt',
});
const image = 'test/fixtures/images/coco_000000039769.png';

// (a), (f): fresh processes, as a one-shot CLI call would be. The first one is the warm-up that
// also brings the checkpoint into the page cache.
log('model load + one cold card job (fresh process each) ...');
/**
 * bench/card-job.ts as one plain JavaScript file, so the fresh processes run as the `blip-itm`
 * command does, on plain node. Under tsx the same process starts ~75 MiB larger (its loader
 * thread and transpiled sources), which would count in every peak-RSS figure. Written below
 * node_modules so the bundle's package imports (onnxruntime-node, sharp) resolve as the library's.
 */
async function bundleCardJob(): Promise<string> {
  const outfile = join('node_modules', '.cache', 'blip-itm-bench', 'card-job.mjs');
  mkdirSync(dirname(outfile), { recursive: true });
  await build({ entryPoints: ['bench/card-job.ts'], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', packages: 'external', logLevel: 'warning' });
  return outfile;
}
const cardJobScript = await bundleCardJob();
interface ChildRun { load_s: number; card_job_cold_s: number; peak_rss_mb: number; converted_s: number; converted_written: boolean }
// fp16/int8 weights are derived into this cache; emptied first, so the warm-up run measures the
// one-time conversion (later runs reuse it, as every load after the first does).
const weightsCache = `${dir}-weights-cache`;
rmSync(weightsCache, { recursive: true, force: true });
function freshProcessRuns(dtype: string, n: number): { warmUp: ChildRun; runs: ChildRun[] } {
  const all: ChildRun[] = [];
  for (let i = 0; i <= n; i++) {
    const out = execFileSync(process.execPath, [cardJobScript, dir, image, threads ? String(threads) : '', dtype, weightsCache], { encoding: 'utf8' });
    all.push(JSON.parse(out.trim().split('\n').pop()!));
  }
  return { warmUp: all[0], runs: all.slice(1) };
}
const childRuns = freshProcessRuns('fp32', runs).runs;

const config = await readBlipConfig(join(dir, 'config.json'));
// visionBatchSize 4 so that (b) can measure batch 4; the library's default is 1.
const model = await BlipForImageTextRetrieval.fromPretrained(dir, { visionBatchSize: 4, ...(threads ? { intraOpThreads: threads } : {}) });
const v = config.vision_config;
// The GEMM rate of a shared VM drifts; measuring it before and after the vision runs and taking
// the higher keeps the roofline ratio conservative.
const gemmShape = [(v.image_size / v.patch_size) ** 2 + 1, v.hidden_size, v.intermediate_size] as const;
const gemmRuns = Math.max(runs, 15);
const gemmBefore = await measureGemmGflops(...gemmShape, gemmRuns, threads, 0);
const chainedBefore = await measureGemmGflops(...gemmShape, gemmRuns, threads, 4);
const one = await model.processor.preprocessImages([image]);
const four: Tensor = { data: new Float32Array(4 * one.data.length), dims: [4, ...one.dims.slice(1)] };
for (let i = 0; i < 4; i++) four.data.set(one.data, i * one.data.length);

log('vision encoder, batch 1 and 4 ...');
const visionB1 = await timeRuns(() => model.encodeImages(one));
const visionB4 = (await timeRuns(() => model.encodeImages(four))) / 4;

const words = 'a large brown dog runs across the green grass chasing a red ball near trees people watch from benches'.split(' ');
const captions = Array.from({ length: 16 }, (_, i) => Array.from({ length: 12 }, (_, j) => words[(i * 5 + j * 3) % words.length]).join(' '));
const texts = model.processor.tokenize(captions);
const stored = await model.encodeImages(one);
log('model card job, ITM against a stored image, ITC text encoding ...');
const cardJobS = await timeRuns(() => cardJob(model, image));
const itmMs = ((await timeRuns(() => model.itmForImage(stored, 0, texts))) * 1000) / captions.length;
const itcMs = ((await timeRuns(() => model.encodeTexts(texts))) * 1000) / captions.length;
const reference = await scoreGrid(model);
const peakRssBenchProcess = peakRssMb();

/**
 * fp32 and `other` run alternately, one call each per round, after two warm-up calls each (a new
 * session's second run still pays for its memory pattern). The VM's speed drifts by ±10% from one
 * minute to the next, so a ratio of medians measured minutes apart (the fp32 figures above, the
 * low-precision ones below) carries that drift; alternating puts both sides of a ratio in the same
 * seconds. Returns the medians of the fp32 calls and of `other`'s.
 */
async function alternating(fp32: () => Promise<unknown>, other: () => Promise<unknown>): Promise<[number, number]> {
  for (let i = 0; i < 2; i++) { await fp32(); await other(); }
  const times: [number[], number[]] = [[], []];
  for (let i = 0; i < Math.max(runs, 7); i++) {
    for (const [k, fn] of [fp32, other].entries()) {
      const t = performance.now();
      await fn();
      times[k].push((performance.now() - t) / 1000);
    }
  }
  return [median(times[0]), median(times[1])];
}

// fp16 and int8 in the same run, each timed alternately with the fp32 model. fp16 on CPU computes
// in float32 from float16 weights widened per call (README "Precision"), so it takes about fp32's time.
const lowPrecision: Record<string, number> = {};
for (const dtype of ['int8', 'fp16'] as const) {
  log(`${dtype}: load + cold card job (fresh process each), vision and card job alternating with fp32, agreement ...`);
  const fresh = freshProcessRuns(dtype, runs);
  const m = await BlipForImageTextRetrieval.fromPretrained(dir, { dtype, weightsCacheDir: weightsCache, ...(threads ? { intraOpThreads: threads } : {}) });
  [lowPrecision[`vision_s_per_image_fp32_beside_${dtype}`], lowPrecision[`vision_s_per_image_${dtype}`]] = await alternating(() => model.encodeImages(one), () => m.encodeImages(one));
  [lowPrecision[`card_job_1x10_s_fp32_beside_${dtype}`], lowPrecision[`card_job_1x10_s_${dtype}`]] = await alternating(() => cardJob(model, image), () => cardJob(m, image));
  const a = agreement(reference, await scoreGrid(m));
  await m.dispose();
  lowPrecision[`load_s_${dtype}`] = median(fresh.runs.map((r) => r.load_s));
  lowPrecision[`convert_s_${dtype}`] = fresh.warmUp.converted_written ? fresh.warmUp.converted_s : NaN;
  lowPrecision[`peak_rss_mb_${dtype}`] = Math.max(...fresh.runs.map((r) => r.peak_rss_mb));
  lowPrecision[`peak_rss_mb_${dtype}_converting`] = fresh.warmUp.peak_rss_mb;
  lowPrecision[`${dtype}_max_abs_prob_diff`] = a.maxAbsProbDiff;
  lowPrecision[`${dtype}_max_abs_cosine_diff`] = a.maxAbsCosineDiff;
  lowPrecision[`${dtype}_rank_top1_agreement`] = a.top1Agreement;
}

await model.dispose();

log('onnxruntime fp32 GEMM rate ...');
const gemm = Math.max(gemmBefore, await measureGemmGflops(...gemmShape, gemmRuns, threads, 0));
const gemmChained = Math.max(chainedBefore, await measureGemmGflops(...gemmShape, gemmRuns, threads, 4));
const visionGflop = visionFlopsPerImage(config) / 1e9;
const best = Math.min(visionB1, visionB4);

const result = {
  machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB`,
  runs,
  load_s: median(childRuns.map((r) => r.load_s)),
  vision_s_per_image_b1: visionB1,
  vision_s_per_image_b4: visionB4,
  itm_ms_per_caption: itmMs,
  itc_ms_per_caption: itcMs,
  card_job_1x10_s: cardJobS,
  card_job_1x10_cold_s: median(childRuns.map((r) => r.card_job_cold_s)),
  peak_rss_mb: Math.max(...childRuns.map((r) => r.peak_rss_mb)),
  peak_rss_mb_bench_process: peakRssBenchProcess,
  gemm_gflops: gemm,
  vision_gflop: visionGflop,
  roofline_ratio: visionGflop / (best * gemm),
  roofline_ratio_b1: visionGflop / (visionB1 * gemm),
  roofline_ratio_b4: visionGflop / (visionB4 * gemm),
  gemm_chained_gflops: gemmChained,
  roofline_ratio_chained: visionGflop / (best * gemmChained),
  ...lowPrecision,
  int8_vision_speedup: lowPrecision.vision_s_per_image_fp32_beside_int8 / lowPrecision.vision_s_per_image_int8,
  int8_card_job_ratio: lowPrecision.card_job_1x10_s_int8 / lowPrecision.card_job_1x10_s_fp32_beside_int8,
  fp16_peak_rss_ratio: lowPrecision.peak_rss_mb_fp16 / Math.max(...childRuns.map((r) => r.peak_rss_mb)),
  fp16_vision_ratio: lowPrecision.vision_s_per_image_fp16 / lowPrecision.vision_s_per_image_fp32_beside_fp16,
  fp16_card_job_ratio: lowPrecision.card_job_1x10_s_fp16 / lowPrecision.card_job_1x10_s_fp32_beside_fp16,
};

if (json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const rows: Array<[string, string]> = [
    ['machine', result.machine],
    ['model load (graph build + sessions)', `${result.load_s.toFixed(2)} s`],
    ['vision encoder, batch 1', `${result.vision_s_per_image_b1.toFixed(3)} s/image`],
    ['vision encoder, batch 4', `${result.vision_s_per_image_b4.toFixed(3)} s/image`],
    ['ITM vs stored image, 16 captions', `${result.itm_ms_per_caption.toFixed(1)} ms/caption`],
    ['ITC text encoding, batch 16', `${result.itc_ms_per_caption.toFixed(1)} ms/caption`],
    ['model card job, 1 image x 10 captions', `${result.card_job_1x10_s.toFixed(2)} s (first call after load: ${result.card_job_1x10_cold_s.toFixed(2)} s)`],
    ['peak RSS, load + card job', `${result.peak_rss_mb.toFixed(0)} MiB (this bench process, batch 4 included: ${result.peak_rss_mb_bench_process.toFixed(0)} MiB)`],
    ['onnxruntime fp32 GEMM rate, one MatMul', `${result.gemm_gflops.toFixed(1)} GFLOP/s`],
    ['  ... 8 MatMuls back to back', `${result.gemm_chained_gflops.toFixed(1)} GFLOP/s`],
    ['vision FLOPs per image', `${result.vision_gflop.toFixed(1)} GFLOP`],
    ['roofline ratio (best batch)', `${result.roofline_ratio.toFixed(3)} (b1 ${result.roofline_ratio_b1.toFixed(3)}, b4 ${result.roofline_ratio_b4.toFixed(3)})`],
    ['  ... against the back-to-back rate', `${result.roofline_ratio_chained.toFixed(3)}`],
    ...(['int8', 'fp16'] as const).flatMap((d): Array<[string, string]> => { const r = result as unknown as Record<string, number>; return [
      [`${d}: vision, batch 1`, `${r[`vision_s_per_image_${d}`].toFixed(3)} s/image (fp32 alternating with it: ${r[`vision_s_per_image_fp32_beside_${d}`].toFixed(3)})`],
      [`${d}: card job 1x10`, `${r[`card_job_1x10_s_${d}`].toFixed(2)} s (fp32 alternating with it: ${r[`card_job_1x10_s_fp32_beside_${d}`].toFixed(2)})`],
      [`${d}: load (cached weights) / first conversion`, `${r[`load_s_${d}`].toFixed(2)} s / ${r[`convert_s_${d}`].toFixed(1)} s`],
      [`${d}: peak RSS`, `${r[`peak_rss_mb_${d}`].toFixed(0)} MiB (while converting: ${r[`peak_rss_mb_${d}_converting`].toFixed(0)} MiB)`],
      [`${d}: agreement with fp32 (4 x 10)`, `prob ${r[`${d}_max_abs_prob_diff`].toExponential(2)}, cosine ${r[`${d}_max_abs_cosine_diff`].toExponential(2)}, top-1 ${r[`${d}_rank_top1_agreement`]}`],
    ]; }),
    ['int8 vision speedup', `${result.int8_vision_speedup.toFixed(2)}x (card job ${result.int8_card_job_ratio.toFixed(2)} of fp32)`],
    ['fp16 against fp32', `peak RSS ${result.fp16_peak_rss_ratio.toFixed(3)}, vision time ${result.fp16_vision_ratio.toFixed(2)}, card job ${result.fp16_card_job_ratio.toFixed(2)}`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`${rows.map(([k, val]) => `${k.padEnd(w)}  ${val}`).join('\n')}\n(medians of ${runs} runs after a warm-up)\n`);
}
