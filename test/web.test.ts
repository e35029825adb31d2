/**
 * The browser build (blip-itm/web) in headless Chromium: the bundle built by scripts/build-web.mjs,
 * pages and model files served from 127.0.0.1 with COOP/COEP (threaded WASM), models on the
 * `wasm` and `webgpu` (SwiftShader) providers against the transformers goldens.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { BrowserContext, Page } from 'playwright-core';
import { FIXTURES, goldenFile, manifestEntry, maxAbsDiff, textById } from './helpers/goldens.js';
import type { StaticServer } from './helpers/static-server.js';
import { BUNDLE, type BundlePage, openBundlePage, skipWithoutChromium } from './helpers/bundle-page.js';

const skip = skipWithoutChromium;

interface ImageEntry { file: string; format: string; mode: string; pil_convert_rgb_sha256: string }
const images: ImageEntry[] = (JSON.parse(readFileSync(`${FIXTURES}/images/images.json`, 'utf8')) as { images: ImageEntry[] }).images;

describe('browser build in headless Chromium', { skip }, () => {
  let server: StaticServer;
  let context: BrowserContext;
  let page: Page;

  let opened: BundlePage | undefined;

  before(async () => {
    opened = await openBundlePage('blip-itm web test');
    ({ server, context, page } = opened);
  });

  after(async () => {
    await opened?.close();
  });

  test('the bundle contains no Node-only module', () => {
    const meta = JSON.parse(readFileSync('dist/web/meta.json', 'utf8')) as {
      inputs: Record<string, unknown>;
      outputs: Record<string, { imports: Array<{ path: string; external?: boolean }> }>;
    };
    const inputs = Object.keys(meta.inputs);
    const nodeOnly = inputs.filter((p) => /node_modules\/(sharp|onnxruntime-node|@img|@duckdb|@lancedb|fastify)\//.test(p));
    assert.deepEqual(nodeOnly, []);
    // Nothing is stubbed (the core takes its platform through seams; scripts/build-web.mjs refuses
    // Node-only modules): every input is our source or one of the two browser dependencies.
    const foreign = inputs.filter((p) => !p.startsWith('src/') && !/(^|\/)node_modules\/(onnxruntime-web|zod)\//.test(p));
    assert.deepEqual(foreign, []);
    // The Node entry points of the core are not reached either (they import node:* or sharp).
    const nodeEntries = ['src/io/files.ts', 'src/checkpoint/config.ts', 'src/checkpoint/safetensors.ts', 'src/preprocessing/image-decode.ts',
      'src/preprocessing/image-processor.ts', 'src/preprocessing/processor.ts', 'src/preprocessing/tokenizer.ts', 'src/model/blip-itm.ts',
      'src/runtime/session.ts', 'src/graph/precision.ts'];
    assert.deepEqual(inputs.filter((p) => nodeEntries.includes(p)), []);
    const externals = Object.values(meta.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path));
    assert.deepEqual(externals, []);
    const code = readFileSync(`.${BUNDLE}`, 'utf8');
    assert.doesNotMatch(code, /\brequire\(["'](node:|fs|path|sharp|onnxruntime-node)/);
    assert.doesNotMatch(code, /\bfrom\s*["']node:/);
    assert.ok(existsSync('dist/web/ort-wasm-simd-threaded.jsep.wasm'), 'onnxruntime-web WASM copied beside the bundle');
  });

  // PNG through our decoder; JPEG (baseline, progressive, ICC-tagged, EXIF-rotated, CMYK) and WebP
  // through Chromium's, with ICC/EXIF segments removed. Every fixture is bit-exact with PIL.
  test('every fixture image decodes to PIL convert("RGB") pixels exactly (PNG alpha/16-bit, JPEG ICC/EXIF/CMYK, WebP)', async () => {
    const pngs = images;
    assert.ok(pngs.filter((e) => e.format === 'PNG').length >= 10 && pngs.filter((e) => e.format === 'JPEG').length >= 6);
    const hashes = await page.evaluate(async ([bundle, files]) => {
      const web = await import(bundle);
      const out: string[] = [];
      for (const f of files) {
        const rgb = await web.decodeWebImage(`/test/fixtures/images/${f}`);
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', rgb.data));
        out.push(Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join(''));
      }
      return out;
    }, [BUNDLE, pngs.map((e) => e.file)] as const);
    pngs.forEach((e, i) => assert.equal(hashes[i], e.pil_convert_rgb_sha256, `${e.file} (${e.mode})`));
  });

  test('pixel values equal the image-processor goldens (32x32) for every fixture image', async () => {
    const golden = await goldenFile('image_processor.safetensors');
    const pngs = images;
    const got = await page.evaluate(async ([bundle, files]) => {
      const web = await import(bundle);
      const proc = new web.BlipImageProcessor({ size: { height: 32, width: 32 } });
      const tok = { call: () => ({}) };
      const p = new web.BlipProcessor(proc, tok);
      const out: number[][] = [];
      for (const f of files) out.push(Array.from((await p.preprocessImages([`/test/fixtures/images/${f}`])).data as Float32Array));
      return out;
    }, [BUNDLE, pngs.map((e) => e.file)] as const);
    for (const [i, e] of pngs.entries()) {
      const key = `pixel_values@32/${e.file}${e.file === 'syn_1x1.png' ? ':channels_last' : ''}`;
      const expected = (await golden(key)).data as Float32Array;
      assert.deepEqual(got[i], Array.from(expected), key);
    }
  });

  for (const name of ['tiny', 'tiny-384'] as const) {
    for (const device of ['wasm', 'webgpu'] as const) {
      // SwiftShader runs tiny-384's vision encoder on WebGPU at ~10 s an image here, so that case
      // checks the single-pair goldens with one vision run; the others check all 8 pairs.
      const single = name === 'tiny-384' && device === 'webgpu';
      test(`model ${name} on ${device} reproduces the transformers goldens (${single ? '1 pair' : '8 pairs'}) from image files fetched by the page`, async () => {
        const goldenName = `model_${name}.safetensors`;
        const golden = await goldenFile(goldenName);
        const entry = manifestEntry(goldenName, single ? 'single/itm_logits' : 'itm/logits');
        const got = await page.evaluate(async ([bundle, base, device, imgs, texts]) => {
          const web = await import(bundle);
          // fp32 explicitly on WASM (its default is int8, tested in web-dtype.test.ts); WebGPU's
          // default is fp16, which falls back to fp32 on SwiftShader (no shader-f16).
          const model = await web.BlipForImageTextRetrieval.fromPretrained(base, device === 'wasm' ? { device, dtype: 'fp32' } : { device });
          try {
            const inputs = await model.processor.call({ images: imgs, text: texts });
            let itm;
            let cos;
            if (imgs.length === 1) {
              const enc = await model.encodeImages(inputs.pixelValues);
              itm = await model.itmForImage(enc, 0, inputs);
              cos = model.cosine(enc, await model.encodeTexts(inputs));
            } else {
              itm = await model.forward(inputs);
              cos = await model.forward(inputs, { useItmHead: false });
            }
            return { device: model.device, dtype: model.dtype, ids: Array.from(inputs.inputIds.data as BigInt64Array, Number), itm: Array.from(itm.data as Float32Array), itmDims: itm.dims, cos: Array.from(cos.data as Float32Array), cosDims: cos.dims };
          } finally {
            await model.dispose();
          }
        }, [BUNDLE, `/test/fixtures/models/${name}/`, device, entry.images!.map((p) => `/test/fixtures/${p}`), entry.texts!.map(textById)] as const);
        const n = entry.images!.length;
        assert.equal(got.device, device);
        assert.equal(got.dtype, 'fp32');
        assert.deepEqual(got.ids, Array.from((await golden(single ? 'single/input_ids' : 'inputs/input_ids')).data as BigInt64Array, Number));
        assert.deepEqual(got.itmDims, [n, 2]);
        assert.deepEqual(got.cosDims, [n, n]);
        const itmDiff = maxAbsDiff(got.itm, (await golden(single ? 'single/itm_logits' : 'itm/logits')).data as Float32Array);
        const cosDiff = maxAbsDiff(got.cos, (await golden(single ? 'single/cos' : 'cos/matrix')).data as Float32Array);
        assert.ok(itmDiff <= 1e-4, `ITM max abs diff ${itmDiff}`);
        assert.ok(cosDiff <= 1e-5, `cosine max abs diff ${cosDiff}`);
      });
    }
  }

  test('a second load in the same browser profile downloads nothing (Cache Storage)', async () => {
    // The model tests above loaded tiny already; this load must come from the cache alone.
    const before = server.log.length;
    const events = await page.evaluate(async ([bundle]) => {
      const web = await import(bundle);
      const seen: Array<{ file: string; cached: boolean }> = [];
      const model = await web.BlipForImageTextRetrieval.fromPretrained('/test/fixtures/models/tiny/', {
        device: 'wasm', progress: (e: { file: string; cached: boolean }) => seen.push({ file: e.file, cached: e.cached }),
      });
      await model.dispose();
      return seen;
    }, [BUNDLE] as const);
    const fetched = server.log.slice(before).filter((r) => r.path.startsWith('/test/fixtures/models/'));
    assert.deepEqual(fetched, []);
    assert.ok(events.some((e) => e.file === 'model.safetensors' && e.cached), 'progress reports the weights as cached');
    // And the first load did download them, once.
    const weights = server.log.filter((r) => r.path === '/test/fixtures/models/tiny/model.safetensors');
    assert.equal(weights.length, 1);
  });

  test('HTTP Range reading of the safetensors header, and a model from Blobs the page already holds', async () => {
    const golden = await goldenFile('model_tiny.safetensors');
    const before = server.log.length;
    const got = await page.evaluate(async ([bundle, text]) => {
      const web = await import(bundle);
      const base = '/test/fixtures/models/tiny/';
      const index = await web.readSafetensorsIndex(new web.HttpRangeSource(new URL(`${base}model.safetensors`, location.href).href));
      const files = new Map();
      for (const f of ['config.json', 'preprocessor_config.json', 'vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'model.safetensors']) {
        files.set(f, await (await fetch(base + f)).blob());
      }
      const model = await web.BlipForImageTextRetrieval.fromPretrained(files, { device: 'wasm', dtype: 'fp32' });
      const inputs = await model.processor.call({ images: '/test/fixtures/images/coco_000000039769.png', text });
      const cos = await model.forward(inputs, { useItmHead: false });
      await model.dispose();
      return { tensors: index.size, source: model.source, ids: Array.from(inputs.inputIds.data as BigInt64Array, Number), cos: Array.from(cos.data as Float32Array) };
    }, [BUNDLE, textById('t01_cats')] as const);
    const ranged = server.log.slice(before).filter((r) => r.path.endsWith('model.safetensors') && r.status === 206);
    assert.ok(ranged.length >= 2 && ranged.every((r) => r.range !== undefined), 'header read by Range requests');
    const { readSafetensors } = await import('../src/checkpoint/safetensors.js');
    assert.equal(got.tensors, (await readSafetensors(`${FIXTURES}/models/tiny/model.safetensors`)).tensors.size);
    assert.equal(got.source, '<local files>');
    assert.deepEqual(got.ids, Array.from((await golden('single/input_ids')).data as BigInt64Array, Number));
    assert.ok(maxAbsDiff(got.cos, (await golden('single/cos')).data as Float32Array) <= 1e-5);
  });

  test('the static demo page scores an uploaded image against captions in the page', async () => {
    const demo = await context.newPage();
    try {
      await demo.goto(`${server.origin}/web/demo/index.html`);
      await demo.fill('#model', '/test/fixtures/models/tiny/');
      await demo.selectOption('#device', 'wasm');
      await demo.setInputFiles('#image', `${FIXTURES}/images/coco_000000039769.png`);
      await demo.click('#run');
      await demo.waitForSelector('#results:not([hidden])', { timeout: 30_000 });
      const rows = await demo.$$eval('#results tbody tr', (trs) => trs.map((tr) => Array.from(tr.children, (td) => td.textContent ?? '')));
      assert.equal(rows.length, 3);
      for (const [caption, prob, cos] of rows) {
        assert.ok(caption.length > 0);
        assert.ok(Number(prob) >= 0 && Number(prob) <= 1, `probability ${prob}`);
        assert.ok(Math.abs(Number(cos)) <= 1, `cosine ${cos}`);
      }
      assert.match(await demo.textContent('#status') ?? '', /^done on wasm/);
    } finally {
      await demo.close();
    }
  });

  test('errors are one line naming the file', async () => {
    const messages = await page.evaluate(async ([bundle]) => {
      const web = await import(bundle);
      const out: string[] = [];
      for (const attempt of [
        () => web.BlipForImageTextRetrieval.fromPretrained('/test/fixtures/images/', { device: 'wasm', cache: false }),
        () => web.BlipForImageTextRetrieval.fromPretrained('/test/fixtures/models/tiny/', { device: 'wasm', dtype: 'int4' }),
        () => web.decodeWebImage(new Uint8Array([1, 2, 3])),
        () => web.decodeWebImage('/test/fixtures/images/syn_big_3000x2000.jpg', { maxPixels: 1_000_000 }),
        () => web.decodeWebImage('/test/fixtures/images/syn_tall_60x1500.png', { maxPixels: 1_000 }),
      ]) {
        try {
          await attempt();
          out.push('no error');
        } catch (e) {
          out.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
      }
      return out;
    }, [BUNDLE] as const);
    assert.match(messages[0], /images\/config\.json: not found/);
    assert.match(messages[1], /dtype must be one of fp32, fp16, int8 \(or q8 for int8\), got "int4"/);
    assert.match(messages[2], /not a readable image/);
    assert.match(messages[3], /syn_big_3000x2000\.jpg: image is 3000x2000 = 6000000 pixels, over the limit of 1000000/);
    assert.match(messages[4], /syn_tall_60x1500\.png: image is 60x1500 = 90000 pixels, over the limit of 1000/);
    for (const m of messages) assert.doesNotMatch(m, /\n/);
  });
});
