import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { readSafetensors } from '../src/checkpoint/safetensors.js';
import { BlipError, UsageError } from '../src/errors.js';
import { FIXTURES, goldenFile, manifestEntry, maxAbsDiff, textById } from './helpers/goldens.js';

for (const name of ['tiny', 'tiny-384'] as const) {
  describe(`model ${name} against the transformers goldens`, () => {
    const dir = `${FIXTURES}/models/${name}`;
    const goldenName = `model_${name}.safetensors`;
    const pairs = manifestEntry(goldenName, 'itm/logits');
    const images = pairs.images!.map((p) => `${FIXTURES}/${p}`);
    const texts = pairs.texts!.map(textById);
    let model: BlipForImageTextRetrieval;
    let golden: Awaited<ReturnType<typeof goldenFile>>;

    before(async () => {
      model = await BlipForImageTextRetrieval.fromPretrained(dir);
      golden = await goldenFile(goldenName);
    });
    after(() => model.dispose());

    test('the processor reproduces the golden token ids', async () => {
      const inputs = await model.processor.call({ text: texts });
      assert.deepEqual([...inputs.inputIds!.data], [...(await golden('inputs/input_ids')).data]);
      assert.deepEqual([...inputs.attentionMask!.data], [...(await golden('inputs/attention_mask')).data]);
    });

    test('vision last hidden states within 1e-4', async () => {
      const entry = manifestEntry(goldenName, 'vision/last_hidden_state');
      const pixels = await model.processor.preprocessImages(entry.images!.map((p) => `${FIXTURES}/${p}`));
      const enc = await model.encodeImages(pixels);
      const expected = await golden('vision/last_hidden_state');
      assert.deepEqual(enc.states.dims, expected.shape);
      assert.ok(maxAbsDiff(enc.states.data, expected.data as Float32Array) <= 1e-4);
    });

    test('ITM logits within 1e-4 and cosine matrix within 1e-5 (image and text files in, as the model card)', async () => {
      const inputs = await model.processor.call({ images, text: texts });
      const itm = await model.forward(inputs);
      assert.deepEqual(itm.dims, [8, 2]);
      const itmDiff = maxAbsDiff(itm.data, (await golden('itm/logits')).data as Float32Array);
      assert.ok(itmDiff <= 1e-4, `ITM max abs diff ${itmDiff}`);
      const cos = await model.forward(inputs, { useItmHead: false });
      assert.deepEqual(cos.dims, [8, 8]);
      const cosDiff = maxAbsDiff(cos.data, (await golden('cos/matrix')).data as Float32Array);
      assert.ok(cosDiff <= 1e-5, `cosine max abs diff ${cosDiff}`);
    });

    test('a single unpadded pair matches its golden', async () => {
      const inputs = await model.processor.call({ images: images[0], text: texts[0] });
      assert.deepEqual([...inputs.inputIds!.data], [...(await golden('single/input_ids')).data]);
      assert.ok(maxAbsDiff((await model.forward(inputs)).data, (await golden('single/itm_logits')).data as Float32Array) <= 1e-4);
      assert.ok(maxAbsDiff((await model.forward(inputs, { useItmHead: false })).data, (await golden('single/cos')).data as Float32Array) <= 1e-5);
    });

    test('a padded batch gives each pair the result it gets alone (<= 1e-5)', async () => {
      const batch = await model.forward(await model.processor.call({ images, text: texts }));
      for (let i = 0; i < texts.length; i++) {
        const alone = await model.forward(await model.processor.call({ images: images[i], text: texts[i] }));
        const d = maxAbsDiff(alone.data, batch.data.subarray(2 * i, 2 * i + 2));
        assert.ok(d <= 1e-5, `pair ${i}: ${d}`);
      }
    });

    test('N captions against one stored image encoding run the vision graph once', async () => {
      const pixels = await model.processor.preprocessImages([images[0]]);
      const visionBefore = model.visionRuns;
      const kvBefore = model.crossKVRuns;
      const enc = await model.encodeImages(pixels);
      const tokens = model.processor.tokenize(texts);
      const first = await model.itmForImage(enc, 0, tokens);
      const again = await model.itmForImage(enc, 0, tokens);
      assert.equal(model.visionRuns - visionBefore, 1);
      assert.equal(model.crossKVRuns - kvBefore, 1, 'cross-attention keys/values are computed once per image');
      assert.deepEqual(first.dims, [texts.length, 2]);
      assert.deepEqual([...again.data], [...first.data]);
      for (let j = 0; j < texts.length; j++) {
        const alone = await model.forward(await model.processor.call({ images: images[0], text: texts[j] }));
        assert.ok(maxAbsDiff(alone.data, first.data.subarray(2 * j, 2 * j + 2)) <= 1e-5, `caption ${j}`);
      }
    });

    test('the weights are referenced inside model.safetensors, never copied', async () => {
      const st = await readSafetensors(`${dir}/model.safetensors`);
      const before = readdirSync(dir).sort();
      let referenced = 0;
      for (const graph of Object.values(model.graphs)) {
        assert.equal(graph.weightsFolder, resolve(dir));
        for (const ext of graph.externalTensors) {
          const info = st.tensors.get(ext.name)!;
          assert.equal(ext.location, 'model.safetensors');
          assert.equal(ext.offset, info.offset);
          assert.equal(ext.length, info.length);
          referenced += ext.length;
        }
        // The serialised graph holds no weight bytes of its own, only small constants.
        assert.ok(graph.bytes.length < 64 * 1024, `${graph.name} graph is ${graph.bytes.length} bytes`);
      }
      assert.ok(referenced > 1_000_000);
      assert.deepEqual(readdirSync(dir).sort(), before, 'loading wrote nothing into the checkpoint folder');
    });

    if (name === 'tiny') {
      test('[ENC] as first token (original BLIP) matches its golden within 1e-4', async () => {
        const inputs = await model.processor.call({ images, text: texts });
        const enc = await model.forward(inputs, { itmTextStart: 'enc' });
        const d = maxAbsDiff(enc.data, (await golden('itm_enc/logits')).data as Float32Array);
        assert.ok(d <= 1e-4, `max abs diff ${d}`);
        // The default stays transformers' [CLS].
        const cls = await model.forward(inputs);
        assert.ok(maxAbsDiff(cls.data, (await golden('itm/logits')).data as Float32Array) <= 1e-4);
      });
    }
  });
}

describe('loading', () => {
  test('a folder with only pytorch_model.bin gives the same scores, pointing into the .bin', async () => {
    const src = resolve(`${FIXTURES}/models/tiny`);
    const dir = mkdtempSync(join(tmpdir(), 'blip-bin-'));
    try {
      for (const f of readdirSync(src)) if (f !== 'model.safetensors') symlinkSync(join(src, f), join(dir, f));
      const fromBin = await BlipForImageTextRetrieval.fromPretrained(dir);
      const fromSt = await BlipForImageTextRetrieval.fromPretrained(src);
      try {
        assert.equal(fromBin.source.weights.format, 'pytorch');
        assert.ok(Object.values(fromBin.graphs).every((g) => g.externalTensors.every((e) => e.location === 'pytorch_model.bin')));
        const inputs = await fromSt.processor.call({ images: `${FIXTURES}/images/skimage_coffee.png`, text: 'a cup of coffee' });
        assert.deepEqual([...(await fromBin.forward(inputs)).data], [...(await fromSt.forward(inputs)).data]);
      } finally {
        await fromBin.dispose();
        await fromSt.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad inputs get usage errors, a disposed model a clear error', async () => {
    const model = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`);
    const inputs = await model.processor.call({ images: [`${FIXTURES}/images/skimage_coffee.png`], text: ['a', 'b', 'c'] });
    const two = await model.processor.preprocessImages([`${FIXTURES}/images/skimage_coffee.png`, `${FIXTURES}/images/skimage_rocket.jpg`]);
    await assert.rejects(model.forward({ ...inputs, pixelValues: two }), /got 2 images and 3 texts/);
    await assert.rejects(model.forward({ ...inputs, pixelValues: { data: new Float32Array(10), dims: [1, 3, 5, 5] } }), UsageError);
    await assert.rejects(model.forward({ ...inputs, inputIds: { data: new BigInt64Array([101n, 99999n]), dims: [1, 2] }, attentionMask: undefined }), /outside the vocabulary/);
    await assert.rejects(model.itmForImage(await model.encodeImages(inputs.pixelValues!), 3, inputs as never), /out of range/);
    await model.dispose();
    await assert.rejects(model.encodeImages(inputs.pixelValues!), (e: unknown) => e instanceof BlipError && /disposed/.test(e.message));
  });

  test('a folder without weights names what it expected', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blip-noweights-'));
    try {
      for (const f of ['config.json', 'preprocessor_config.json', 'vocab.txt']) symlinkSync(resolve(`${FIXTURES}/models/tiny/${f}`), join(dir, f));
      await assert.rejects(BlipForImageTextRetrieval.fromPretrained(dir), /no weights found: expected one of model.safetensors/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('itmPairs scores arbitrary (image, text) pairs, one cross-attention pass per image', async () => {
  const model = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`);
  try {
    const files = ['skimage_coffee.png', 'skimage_rocket.jpg'].map((f) => `${FIXTURES}/images/${f}`);
    const images = await model.encodeImages(await model.processor.preprocessImages(files));
    const texts = model.processor.tokenize(['a cup of coffee', 'a rocket launch', 'two cats']);
    const pairs = [{ image: 1, text: 2 }, { image: 0, text: 0 }, { image: 1, text: 0 }, { image: 0, text: 1 }];
    const kvBefore = model.crossKVRuns;
    const out = await model.itmPairs(images, texts, pairs, { itmTextStart: 'enc' });
    assert.equal(model.crossKVRuns - kvBefore, 2);
    for (const [k, p] of pairs.entries()) {
      const alone = await model.itmForImage(images, p.image, model.processor.tokenize([['a cup of coffee', 'a rocket launch', 'two cats'][p.text]]), { itmTextStart: 'enc' });
      assert.ok(maxAbsDiff(alone.data, out.data.subarray(2 * k, 2 * k + 2)) <= 1e-5, `pair ${k}`);
    }
    await assert.rejects(model.itmPairs(images, texts, [{ image: 2, text: 0 }]), /pairs\[0\].image 2 is out of range/);
  } finally {
    await model.dispose();
  }
});
