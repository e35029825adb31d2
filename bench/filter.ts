import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { ScoringEngine } from '../src/engine/scoring-engine.js';
import { discoverInputs } from '../src/filter/inputs.js';
import { runLocal } from '../src/filter/run-local.js';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { benchCheckpoint } from './random-checkpoint.js';

/**
 * npm run bench:filter [-- --json] [--images N] [--runs N]
 *
 * The dataset filter's throughput on the large random checkpoint (see docs/performance.md), with
 * 1 caption per image and with 5, against the model-only rate measured in the same run: the same
 * pairs through direct model calls on images decoded beforehand (vision encoder, text encoder,
 * ITM; no reading, decoding or writing). The filter run is the whole pipeline from a JSONL file
 * of image paths to Parquet parts. A ratio near 1 means decoding and I/O never hold the model up.
 * Run it under `flock /tmp/blip-bench.lock`, so that benchmarks do not overlap.
 */
const args = process.argv.slice(2);
const json = args.includes('--json');
const argValue = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const imagesPerRun = Number(argValue('--images') ?? 12);
const runs = Number(argValue('--runs') ?? 1);
const log = (s: string) => { if (!json) process.stderr.write(`${s}\n`); };
const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

const dir = await benchCheckpoint();

// Photo-sized JPEGs (640 x 480, as COCO's), distinct per run so no cache serves them.
const work = join(tmpdir(), `blip-itm-bench-filter-${process.pid}`);
mkdirSync(join(work, 'img'), { recursive: true });
const PHOTOS = ['coco_000000039769.png', 'skimage_chelsea.png', 'skimage_coffee.png', 'skimage_rocket.jpg'];
let imageCounter = 0;
async function freshImages(n: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = imageCounter++;
    const name = `img/p${k}.jpg`;
    let img = sharp(`test/fixtures/images/${PHOTOS[k % PHOTOS.length]}`).removeAlpha().resize(648 + (k % 7) * 8, 488 + (k % 5) * 8, { fit: 'fill' });
    if (k % 2) img = img.flop();
    await img.extract({ left: k % 8, top: k % 8, width: 640, height: 480 }).jpeg({ quality: 90 }).toFile(join(work, name));
    names.push(name);
  }
  return names;
}
const caption = (i: number, j: number) => `a photo number ${i} of a cat and a dog on a sofa, caption ${j}`;

const model = await BlipForImageTextRetrieval.fromPretrained(dir);

/** Model-only pairs/s: direct calls on pre-decoded pixels, one image at a time, as the model alone runs. */
async function modelOnly(images: string[], perImage: number): Promise<number> {
  const pixels = [];
  for (const image of images) pixels.push(await model.processor.preprocessImages([join(work, image)]));
  const t0 = performance.now();
  for (const [i, px] of pixels.entries()) {
    const enc = await model.encodeImages(px);
    const tokens = model.processor.tokenize(Array.from({ length: perImage }, (_, j) => caption(i, j)));
    model.cosine(enc, await model.encodeTexts(tokens));
    await model.itmForImage(enc, 0, tokens);
  }
  return (images.length * perImage) / ((performance.now() - t0) / 1000);
}

/** The filter's pairs/s: JSONL of paths in, Parquet parts out, a fresh engine (empty cache). */
async function filterRun(images: string[], perImage: number, tag: string): Promise<number> {
  const input = join(work, `${tag}.jsonl`);
  writeFileSync(input, images.flatMap((image, i) => Array.from({ length: perImage }, (_, j) => JSON.stringify({ image, caption: caption(i, j) }))).join('\n') + '\n');
  const engine = new ScoringEngine(model);
  try {
    const { files, format } = await discoverInputs([input]);
    const summary = await runLocal({
      output: join(work, `out-${tag}`), inputs: files, overwrite: true, engine: async () => engine,
      model: { model: dir, revision: null, commit: null, weightsFile: 'model.safetensors', fingerprint: 'bench' },
      options: { inputFormat: format, imageCol: 'image', textCol: 'caption', idCol: null, imageRoot: work, threshold: 0.5, minCosine: null, format: 'parquet', unitRows: 1000, itmTextStart: 'cls', preCaption: false },
    });
    if (summary.manifest.totals.errors > 0) throw new Error(`${summary.manifest.totals.errors} rows failed`);
    return summary.pairsRun / summary.seconds;
  } finally {
    await engine.close();
  }
}

try {
  log(`checkpoint: ${dir}; ${imagesPerRun} distinct 640x480 JPEGs per measurement, ${runs} run(s)`);
  log('warm-up ...');
  await modelOnly(await freshImages(2), 1);
  await filterRun(await freshImages(2), 1, 'warm');
  const results: Record<string, { model: number[]; filter: number[] }> = { '1': { model: [], filter: [] }, '5': { model: [], filter: [] } };
  for (let r = 0; r < runs; r++) {
    for (const per of [1, 5]) {
      // Model-only and filter alternate on fresh images, so drift of the machine hits both alike.
      const m = await modelOnly(await freshImages(imagesPerRun), per);
      const f = await filterRun(await freshImages(imagesPerRun), per, `r${r}-${per}`);
      log(`${per} caption(s)/image: model-only ${m.toFixed(3)} pairs/s, filter ${f.toFixed(3)} pairs/s, ratio ${(f / m).toFixed(3)}`);
      results[per].model.push(m);
      results[per].filter.push(f);
    }
  }
  const out: Record<string, unknown> = { machine: cpus()[0]?.model, cpus: cpus().length, images_per_measurement: imagesPerRun, runs };
  for (const per of ['1', '5']) {
    const m = median(results[per].model);
    const f = median(results[per].filter);
    out[`model_only_pairs_per_s_${per}cap`] = Number(m.toFixed(4));
    out[`filter_pairs_per_s_${per}cap`] = Number(f.toFixed(4));
    out[`ratio_${per}cap`] = Number(median(results[per].filter.map((x, i) => x / results[per].model[i])).toFixed(4));
  }
  process.stdout.write(`${JSON.stringify(out, null, json ? undefined : 1)}\n`);
} finally {
  await model.dispose();
  rmSync(work, { recursive: true, force: true });
}
