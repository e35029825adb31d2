/**
 * The browser build's fp16 and int8 (blip-itm/web, dtype option) in headless Chromium: weights
 * derived in the page from the fetched checkpoint, against the transformers fp32 goldens with the
 * Node build's documented bounds (test/precision.test.ts), and int8 against Node's int8.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { matchProbability } from '../src/tensor.js';
import { FIXTURES, goldenFile, manifestEntry, maxAbsDiff, textById } from './helpers/goldens.js';
import { BUNDLE, type BundlePage, openBundlePage, skipWithoutChromium } from './helpers/bundle-page.js';

const skip = skipWithoutChromium;

/** test/precision.test.ts's bounds against the fp32 goldens (measured maxima on these models plus ~20%). */
const BOUNDS = { fp16: { prob: 2e-3, cos: 2e-3 }, int8: { prob: 0.022, cos: 0.045 } } as const;

const probs = (logits: ArrayLike<number>): number[] => Array.from({ length: logits.length / 2 }, (_, i) => matchProbability(logits[2 * i], logits[2 * i + 1]));

interface PageResult { dtype: string; itm: number[]; cos: number[] }

describe('browser dtypes in headless Chromium', { skip }, () => {
  let page: Page;
  const cacheDir = mkdtempSync(join(tmpdir(), 'blip-web-dtype-'));

  let opened: BundlePage | undefined;

  before(async () => {
    opened = await openBundlePage('blip-itm dtype test');
    ({ page } = opened);
  });

  after(async () => {
    await opened?.close();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  async function runInPage(name: string, options: Record<string, unknown>, images: string[], texts: string[]): Promise<PageResult> {
    return page.evaluate(async ([bundle, base, opts, imgs, txts]) => {
      const web = await import(bundle);
      const model = await web.BlipForImageTextRetrieval.fromPretrained(base, opts);
      try {
        const inputs = await model.processor.call({ images: imgs, text: txts });
        const itm = await model.forward(inputs);
        const cos = await model.forward(inputs, { useItmHead: false });
        return { dtype: model.dtype, itm: Array.from(itm.data as Float32Array), cos: Array.from(cos.data as Float32Array) };
      } finally {
        await model.dispose();
      }
    }, [BUNDLE, `/test/fixtures/models/${name}/`, options, images.map((p) => `/${p}`), texts] as const);
  }

  for (const name of ['tiny', 'tiny-384'] as const) {
    const goldenName = `model_${name}.safetensors`;
    const entry = manifestEntry(goldenName, 'itm/logits');
    const images = entry.images!.map((p) => `${FIXTURES}/${p}`);
    const texts = entry.texts!.map(textById);

    // tiny loads with no dtype (WASM's default is int8); tiny-384 asks for it by its alias.
    test(`${name}: int8 on WASM is within the Node int8 bounds of the goldens and agrees with onnxruntime-node int8`, async () => {
      const options = name === 'tiny' ? { device: 'wasm' } : { device: 'wasm', dtype: 'q8' };
      const got = await runInPage(name, options, images, texts);
      assert.equal(got.dtype, 'int8');
      const golden = await goldenFile(goldenName);
      const probDiff = maxAbsDiff(probs(got.itm), probs((await golden('itm/logits')).data as Float32Array));
      const cosDiff = maxAbsDiff(got.cos, (await golden('cos/matrix')).data as Float32Array);

      const node = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/${name}`, { dtype: 'int8', weightsCacheDir: cacheDir });
      let nodeItm: Float32Array;
      let nodeCos: Float32Array;
      try {
        const inputs = await node.processor.call({ images, text: texts });
        nodeItm = (await node.forward(inputs)).data;
        nodeCos = (await node.forward(inputs, { useItmHead: false })).data;
      } finally {
        await node.dispose();
      }
      const logitVsNode = maxAbsDiff(got.itm, nodeItm);
      const probVsNode = maxAbsDiff(probs(got.itm), probs(nodeItm));
      const cosVsNode = maxAbsDiff(got.cos, nodeCos);
      console.log(`# ${name} web int8: vs goldens prob ${probDiff.toExponential(2)} cos ${cosDiff.toExponential(2)}; vs node int8 logits ${logitVsNode.toExponential(2)} prob ${probVsNode.toExponential(2)} cos ${cosVsNode.toExponential(2)}`);
      assert.ok(probDiff <= BOUNDS.int8.prob, `ITM probability max abs diff ${probDiff}`);
      assert.ok(cosDiff <= BOUNDS.int8.cos, `cosine max abs diff ${cosDiff}`);
      // The weights are the same bytes (see the next test); the runs are not bit-identical because
      // dynamic quantization rounds activations per call: float differences of ~1e-7 between the
      // WASM and x86 kernels (sums in other orders) flip single activation roundings, each worth a
      // quantization step. So web and Node int8 must agree as closely as int8 agrees with fp32.
      assert.ok(probVsNode <= BOUNDS.int8.prob, `ITM probability vs node int8: max abs diff ${probVsNode}`);
      assert.ok(cosVsNode <= BOUNDS.int8.cos, `cosine vs node int8: max abs diff ${cosVsNode}`);
    });

    // WebGPU's fp16 graph (float16 activations end to end, MatMul linears) cannot run on
    // SwiftShader (no shader-f16); its float16 feeds and cross-attention hand-over are checked on WASM.
    for (const half of [false, true]) {
      test(`${name}: fp16 on WASM (${half ? 'float16 activations, as on WebGPU' : 'float32 arithmetic'}) is within the fp16 bounds of the goldens`, async () => {
        const got = await runInPage(name, { device: 'wasm', dtype: 'fp16', halfActivations: half }, images, texts);
        assert.equal(got.dtype, 'fp16');
        const golden = await goldenFile(goldenName);
        const probDiff = maxAbsDiff(probs(got.itm), probs((await golden('itm/logits')).data as Float32Array));
        const cosDiff = maxAbsDiff(got.cos, (await golden('cos/matrix')).data as Float32Array);
        console.log(`# ${name} web fp16${half ? ' half activations' : ''}: vs goldens prob ${probDiff.toExponential(2)} cos ${cosDiff.toExponential(2)}`);
        assert.ok(probDiff <= BOUNDS.fp16.prob, `ITM probability max abs diff ${probDiff}`);
        assert.ok(cosDiff <= BOUNDS.fp16.cos, `cosine max abs diff ${cosDiff}`);
      });
    }
  }

  test('the weights derived in memory are byte for byte those of Node\'s weights cache (int8 and fp16)', async () => {
    const { openAsBlob } = await import('node:fs');
    const { readSafetensors, readTensorData } = await import('../src/checkpoint/safetensors.js');
    const { parseBlipConfig } = await import('../src/checkpoint/config.js');
    const { buildVisionGraph } = await import('../src/graph/blip-graphs.js');
    const { packDerivedWeights } = await import('../src/web/derived-weights.js');
    const { PlanningIndex } = await import('../src/checkpoint/derived-tensors.js');
    const { BlobSource } = await import('../src/web/byte-source.js');
    const { readSafetensorsIndex } = await import('../src/web/weights.js');
    const dir = `${FIXTURES}/models/tiny`;
    const config = parseBlipConfig(JSON.parse(await (await openAsBlob(`${dir}/config.json`)).text()), 'config.json');
    const source = new BlobSource(await openAsBlob(`${dir}/model.safetensors`), 'model.safetensors');
    // Named by its real path: on Node the graph builder resolves each weight's file.
    const tensors = await readSafetensorsIndex(source, resolve(dir, 'model.safetensors'));
    for (const dtype of ['int8', 'fp16'] as const) {
      const node = await BlipForImageTextRetrieval.fromPretrained(dir, { dtype, weightsCacheDir: cacheDir });
      await node.dispose();
      const cached = (await readSafetensors(node.source.derived!.file!)).tensors;
      // The page's first build (the second, against the packed buffer, resolves no file on Node).
      const plan = new PlanningIndex(tensors);
      // fp16 as both platforms run it on CPU/WASM: float32 activations (LayerNorm parameters f32).
      buildVisionGraph(config, plan, 'tiny', { dtype, activations: dtype === 'fp16' ? 'fp32' : undefined });
      const weights = await packDerivedWeights('blip_vision.weights', [...plan.requests.values()], source);
      assert.ok(weights.index.size > 10);
      for (const t of weights.index.values()) {
        const expected = new Uint8Array(((await readTensorData(cached.get(t.name)!)) as ArrayBufferView).buffer.slice(0));
        assert.deepEqual(weights.data.subarray(t.offset, t.offset + t.length), new Uint8Array(expected.buffer, 0, t.length), `${dtype} ${t.name}`);
      }
    }
  });

  test('fp16 on a WebGPU adapter without shader-f16 (SwiftShader) is a one-line error; the default there is fp32', async () => {
    const got = await page.evaluate(async ([bundle]) => {
      const web = await import(bundle);
      const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ features: Set<string> } | null> } }).gpu;
      const adapter = await gpu?.requestAdapter();
      let error = 'no error';
      try {
        await web.BlipForImageTextRetrieval.fromPretrained('/test/fixtures/models/tiny/', { device: 'webgpu', dtype: 'fp16' });
      } catch (e) {
        error = `${(e as Error).name}: ${(e as Error).message}`;
      }
      const model = await web.BlipForImageTextRetrieval.fromPretrained('/test/fixtures/models/tiny/', { device: 'webgpu' });
      const dtype = model.dtype;
      await model.dispose();
      return { adapter: adapter !== null && adapter !== undefined, f16: adapter?.features.has('shader-f16') ?? false, error, dtype };
    }, [BUNDLE] as const);
    assert.equal(got.adapter, true, 'SwiftShader gives a WebGPU adapter');
    assert.equal(got.f16, false, 'this test is about an adapter without shader-f16');
    assert.match(got.error, /^UsageError: dtype "fp16" on device "webgpu" needs the adapter feature "shader-f16", which this browser's WebGPU adapter lacks/);
    assert.doesNotMatch(got.error, /\n/);
    assert.equal(got.dtype, 'fp32');
  });
});
