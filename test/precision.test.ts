import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { matchProbability } from '../src/tensor.js';
import { parseDtype } from '../src/checkpoint/dtype.js';
import { quantizeTransposed, readAsFloat32, rowScales } from '../src/checkpoint/derived-weights.js';
import { floatsToHalf, fromHalfBits, halfToFloats, toHalfBits } from '../src/checkpoint/half.js';
import { readSafetensors } from '../src/checkpoint/safetensors.js';
import { writeSafetensors } from '../src/checkpoint/safetensors-writer.js';
import { UsageError } from '../src/errors.js';
import { rankCaptions } from '../src/retrieval/rank-captions.js';
import { FIXTURES, goldenFile, manifestEntry, maxAbsDiff, textById } from './helpers/goldens.js';

/**
 * fp16 and int8 against the transformers fp32 goldens of the fixture models. fp16: the issue's
 * 2e-3 (measured maxima: CPU prob 9.4e-4, cosine 8.9e-4; float16 end to end prob 1.2e-3, cosine
 * 1.4e-3). int8: measured maxima prob 1.8e-2, cosine 3.7e-2 on these models, whose 32-64-wide
 * layers average int8 rounding over few terms; the bounds below are those maxima plus ~20%
 * (README "Precision" has the large model's figures).
 */
const BOUNDS = { fp16: { prob: 2e-3, cos: 2e-3 }, int8: { prob: 0.022, cos: 0.045 } } as const;

const cacheDir = mkdtempSync(join(tmpdir(), 'blip-precision-'));
after(() => rmSync(cacheDir, { recursive: true, force: true }));

function probs(logits: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < logits.length; i += 2) out.push(matchProbability(logits[i], logits[i + 1]));
  return out;
}

for (const name of ['tiny', 'tiny-384'] as const) {
  for (const variant of ['fp16', 'fp16-half-activations', 'int8'] as const) {
    const dtype = variant === 'int8' ? 'int8' : 'fp16';
    describe(`${name} in ${variant} against the fp32 goldens`, () => {
      const dir = `${FIXTURES}/models/${name}`;
      const goldenName = `model_${name}.safetensors`;
      const pairs = manifestEntry(goldenName, 'itm/logits');
      const images = pairs.images!.map((p) => `${FIXTURES}/${p}`);
      const texts = pairs.texts!.map(textById);
      let model: BlipForImageTextRetrieval;
      let golden: Awaited<ReturnType<typeof goldenFile>>;
      before(async () => {
        // fp16-half-activations: the float16-end-to-end graphs GPU providers run, here on CPU.
        model = await BlipForImageTextRetrieval.fromPretrained(dir, { dtype, weightsCacheDir: cacheDir, halfActivations: variant === 'fp16-half-activations' });
        golden = await goldenFile(goldenName);
      });
      after(() => model.dispose());

      test(`ITM probabilities within ${BOUNDS[dtype].prob} and cosines within ${BOUNDS[dtype].cos}`, async () => {
        assert.equal(model.dtype, dtype);
        const inputs = await model.processor.call({ images, text: texts });
        const itm = await model.forward(inputs);
        const expected = (await golden('itm/logits')).data as Float32Array;
        const probDiff = maxAbsDiff(probs(itm.data), probs(expected));
        const cos = await model.forward(inputs, { useItmHead: false });
        const cosDiff = maxAbsDiff(cos.data, (await golden('cos/matrix')).data as Float32Array);
        console.log(`# ${name} ${variant}: max |prob diff| ${probDiff.toExponential(2)}, max |cosine diff| ${cosDiff.toExponential(2)}`);
        assert.ok(probDiff <= BOUNDS[dtype].prob, `ITM probability max abs diff ${probDiff}`);
        assert.ok(cosDiff <= BOUNDS[dtype].cos, `cosine max abs diff ${cosDiff}`);
      });

      test('the graphs read one converted weights file in the cache, never the checkpoint folder', () => {
        const file = model.source.derived?.file;
        assert.ok(file && file.startsWith(cacheDir), `derived file ${file}`);
        for (const graph of Object.values(model.graphs)) {
          assert.equal(graph.weightsFolder, cacheDir);
          for (const ext of graph.externalTensors) assert.equal(join(cacheDir, ext.location), file);
          assert.ok(graph.externalTensors.every((t) => /^(f16|f32|q8t|q8s):/.test(t.name)));
        }
        if (dtype === 'int8') {
          const names = model.graphs.vision.externalTensors.map((t) => t.name);
          assert.ok(names.includes('q8t:vision_model.encoder.layers.0.mlp.fc1.weight'));
          assert.ok(names.includes('f32:vision_proj.weight'), 'the ITC head stays float32');
          assert.ok(names.includes('f32:vision_model.embeddings.patch_embedding.weight'), 'the patch embedding stays float32');
        }
      });

      if (variant === 'fp16-half-activations') {
        test('float16 end to end: pixels, cross-attention keys/values and the text graph\'s cross inputs are float16', () => {
          assert.equal(model.graphs.text.halfActivations, true);
          assert.equal(model.graphs.vision.castsWeights, false);
        });
      } else if (variant === 'fp16') {
        test('on CPU: float16 linear weights feed float32 arithmetic; LayerNorm parameters and lookup tables stay float32', () => {
          assert.equal(model.graphs.text.halfActivations, false);
          assert.equal(model.graphs.vision.castsWeights, true);
          const names = [...model.graphs.vision.externalTensors, ...model.graphs.text.externalTensors].map((t) => t.name);
          assert.ok(names.includes('f16:vision_model.encoder.layers.0.mlp.fc1.weight'));
          assert.ok(names.includes('f16:text_encoder.encoder.layer.0.attention.self.query.bias'));
          for (const kept of ['vision_model.encoder.layers.0.layer_norm1.weight', 'vision_model.embeddings.position_embedding',
            'vision_model.embeddings.class_embedding', 'text_encoder.embeddings.LayerNorm.bias', 'text_encoder.embeddings.position_embeddings.weight']) {
            assert.ok(names.includes(`f32:${kept}`), kept);
            assert.ok(!names.includes(`f16:${kept}`), kept);
          }
          assert.ok(names.includes('f16:text_encoder.embeddings.word_embeddings.weight'), 'the word table stays float16, widened row by row');
        });
      }
      if (dtype === 'fp16') {
        // fp16 moves ITM margins (l1 - l0) by up to ~1.5e-2 (CPU) and ~2.2e-2 (float16 end to end)
        // on these models, and tiny-384 has two captions of the cat image 2e-4 apart in fp32; with
        // LayerNorm parameters and position tables in float32 on CPU (rounded, they alone swap the
        // pair) both graph kinds keep it in order, 2.6e-3 apart on CPU (README "Precision",
        // bench/fp16-rounding.ts). Closer pairs than fp16's error on other inputs can still swap.
        test('rank orders the captions of every fixture image exactly as fp32 does', async () => {
          const fp32 = await BlipForImageTextRetrieval.fromPretrained(dir);
          try {
            for (const image of new Set(images)) {
              const a = (await rankCaptions(fp32, image, texts)).map((r) => r.index);
              const b = (await rankCaptions(model, image, texts)).map((r) => r.index);
              assert.deepEqual(b, a, `${image}: fp16 order ${b} against fp32 ${a}`);
            }
          } finally {
            await fp32.dispose();
          }
        });
      }
    });
  }
}

describe('converted weights cache', () => {
  test('a second load reuses the cache file; its bytes are the rounded checkpoint', async () => {
    const dir = mkdtempSync(join(cacheDir, 'reuse-'));
    const first = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`, { dtype: 'int8', weightsCacheDir: dir });
    await first.dispose();
    assert.equal(first.source.derived?.written, true);
    const files = readdirSync(dir);
    assert.equal(files.length, 1, `one file, no temporary left: ${files}`);
    const mtime = statSync(join(dir, files[0])).mtimeMs;
    const again = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`, { dtype: 'q8', weightsCacheDir: dir });
    await again.dispose();
    assert.equal(again.dtype, 'int8', 'q8 is int8');
    assert.equal(again.source.derived?.written, false);
    assert.equal(statSync(join(dir, files[0])).mtimeMs, mtime);

    const st = await readSafetensors(join(dir, files[0]));
    const src = first.source.weights.tensors.get('vision_model.encoder.layers.0.mlp.fc1.weight')!;
    const w = await readAsFloat32(src);
    const [rows, cols] = src.shape;
    const q = new Int8Array((await readAsFloat32Raw(st.tensors.get(`q8t:${src.name}`)!)).buffer);
    const s = await readAsFloat32(st.tensors.get(`q8s:${src.name}`)!);
    assert.deepEqual(st.tensors.get(`q8t:${src.name}`)!.shape, [cols, rows]);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) assert.ok(Math.abs(q[c * rows + r] * s[r] - w[r * cols + c]) <= s[r] / 2 + 1e-7);
    }
  });

  test('an fp16 safetensors checkpoint is read in place, with the same results as an fp32 one holding the same values', async () => {
    // fp16 on CPU keeps LayerNorm parameters and embeddings of an fp32 checkpoint in float32, so the
    // fp32 twin holds the float16-rounded values: then every tensor the graphs compute with is equal.
    const src = `${FIXTURES}/models/tiny`;
    const st = await readSafetensors(`${src}/model.safetensors`);
    const copy = async (dtype: 'F16' | 'F32') => {
      const dir = mkdtempSync(join(cacheDir, `${dtype}-ckpt-`));
      for (const f of readdirSync(src)) if (!/\.(safetensors|bin)$/.test(f)) copyFileSync(join(src, f), join(dir, f));
      await writeSafetensors(join(dir, 'model.safetensors'), [...st.tensors.values()].map((t) => ({
        name: t.name, dtype, shape: t.shape, bytes: async () => {
          const h = floatsToHalf(await readAsFloat32(t));
          return new Uint8Array(dtype === 'F16' ? h.buffer : halfToFloats(h).buffer);
        },
      })));
      return dir;
    };
    const empty = mkdtempSync(join(cacheDir, 'unused-'));
    const inPlace = await BlipForImageTextRetrieval.fromPretrained(await copy('F16'), { dtype: 'fp16', weightsCacheDir: empty });
    const converted = await BlipForImageTextRetrieval.fromPretrained(await copy('F32'), { dtype: 'fp16', weightsCacheDir: cacheDir });
    try {
      assert.equal(inPlace.source.derived?.file, undefined);
      assert.deepEqual(readdirSync(empty), [], 'nothing written to the cache');
      for (const graph of Object.values(inPlace.graphs)) assert.ok(graph.externalTensors.every((t) => t.location === 'model.safetensors'));
      assert.ok(converted.graphs.text.externalTensors.some((t) => t.name === 'f32:text_encoder.embeddings.LayerNorm.weight'));
      const inputs = await inPlace.processor.call({ images: `${FIXTURES}/images/coco_000000039769.png`, text: ['two cats on a blanket', 'a rocket'] });
      assert.deepEqual([...(await inPlace.forward(inputs)).data], [...(await converted.forward(inputs)).data]);
      assert.deepEqual([...(await inPlace.forward(inputs, { useItmHead: false })).data], [...(await converted.forward(inputs, { useItmHead: false })).data]);
    } finally {
      await inPlace.dispose();
      await converted.dispose();
    }
  });
});

async function readAsFloat32Raw(t: { file: string; offset: number; length: number }): Promise<Uint8Array> {
  const { open } = await import('node:fs/promises');
  const fh = await open(t.file, 'r');
  try {
    const buf = new Uint8Array(t.length);
    await fh.read(buf, 0, t.length, t.offset);
    return buf;
  } finally {
    await fh.close();
  }
}

describe('dtype parsing and number formats', () => {
  test('fp32, fp16, int8 and q8 are accepted; anything else is a usage error naming the values', async () => {
    assert.equal(parseDtype(undefined), 'fp32');
    assert.equal(parseDtype('q8'), 'int8');
    assert.equal(parseDtype('fp16'), 'fp16');
    assert.throws(() => parseDtype('fp64'), (e: unknown) => e instanceof UsageError && /fp32, fp16, int8 \(or q8/.test(e.message));
    await assert.rejects(BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`, { dtype: 'bf16' as 'fp16' }), UsageError);
  });

  test('float16 rounding: nearest, ties to even, overflow to infinity, subnormals', () => {
    assert.equal(toHalfBits(1), 0x3c00);
    assert.equal(toHalfBits(-2), 0xc000);
    assert.equal(toHalfBits(65504), 0x7bff);
    assert.equal(toHalfBits(65520), 0x7c00);
    assert.equal(toHalfBits(2 ** -24), 0x0001);
    assert.equal(toHalfBits(2 ** -26), 0x0000);
    assert.equal(toHalfBits(1 + 2 ** -11), 0x3c00, 'tie to even (down)');
    assert.equal(toHalfBits(1 + 3 * 2 ** -11), 0x3c02, 'tie to even (up)');
    assert.ok(Number.isNaN(fromHalfBits(toHalfBits(NaN))));
    for (const h of [0x0001, 0x03ff, 0x0400, 0x3555, 0x7bff, 0xbc00]) assert.equal(toHalfBits(fromHalfBits(h)), h);
  });

  test('int8 quantization: symmetric per row, transposed, zero rows stay zero', () => {
    const w = new Float32Array([1, -0.5, 0.25, 0, 0, 0]);
    const s = rowScales(w, 2, 3);
    assert.deepEqual([...s], [1 / 127, 1].map((x) => Math.fround(x)));
    assert.deepEqual([...quantizeTransposed(w, 2, 3, s)], [127, 0, -64, 0, 32, 0]);
  });
});
