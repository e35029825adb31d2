import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { readSafetensors, readTensorData } from '../src/checkpoint/safetensors.js';
import { decodeEntry, encodeEntry, EncodingCache, modelCacheKey, sha256Hex } from '../src/retrieval/encoding-cache.js';
import { evaluateRetrieval, karpathySplit, readKarpathySplit, scoreMatrix, type EvaluationResult } from '../src/retrieval/evaluate.js';
import { preCaption } from '../src/retrieval/pre-caption.js';
import { bestCaseRank, numpyArgsort, queryRank, recallFigures, worstCaseRank } from '../src/retrieval/recall.js';
import { topK } from '../src/retrieval/top-k.js';
import { FIXTURES, maxAbsDiff } from './helpers/goldens.js';

const RETRIEVAL = `${FIXTURES}/retrieval`;
const IMAGES = `${FIXTURES}/images`;
const DATASET = `${RETRIEVAL}/dataset.json`;

interface RunRef {
  file: string;
  k_effective: { i2t: number; t2i: number };
  recall: Record<string, number>;
  ranks: { i2t: number[]; t2i: number[] };
  ranks_ties_best_case: { i2t: number[]; t2i: number[] };
  ranks_ties_worst_case: { i2t: number[]; t2i: number[] };
}
const REF = JSON.parse(readFileSync(`${RETRIEVAL}/goldens/retrieval.json`, 'utf8')) as {
  images: string[];
  img2txt: number[][];
  txt2img: number[];
  texts: Array<{ raw: string; cleaned: string; input_ids: number[]; attention_mask: number[] }>;
  models: Record<string, { runs: Record<string, RunRef> }>;
};

async function goldens(file: string): Promise<(name: string) => Promise<Float32Array | BigInt64Array>> {
  const st = await readSafetensors(`${RETRIEVAL}/${file}`);
  return async (name) => {
    const info = st.tensors.get(name);
    if (!info) throw new Error(`${file} has no ${name}`);
    return (await readTensorData(info)) as Float32Array | BigInt64Array;
  };
}

const nums = (a: ArrayLike<number | bigint>) => Array.from(a, Number);

describe('pre_caption', () => {
  test('reproduces the cleaned captions of the reference, corner cases included', () => {
    for (const [i, t] of REF.texts.entries()) assert.equal(preCaption(t.raw), t.cleaned, `text ${i}`);
  });

  test('Python whitespace and punctuation rules', () => {
    assert.equal(preCaption('  A Cat.  On: the (MAT)!  \n'), 'a cat on the mat');
    // U+001C and U+0085 are Python whitespace (squeezed in runs); U+FEFF is not.
    assert.equal(preCaption('a\x1c\x1db'), 'a b');
    assert.equal(preCaption('a \x85b'), 'a b');
    assert.equal(preCaption('a\ufeff\ufeffb'), 'a\ufeff\ufeffb');
    // A lone tab / no-break space is kept and is no word boundary; only ' ' splits words.
    assert.equal(preCaption('one\ttwo three', 2), 'one\ttwo three');
    assert.equal(preCaption('w1 w2 w3 w4', 3), 'w1 w2 w3');
    assert.equal(preCaption("it's a-ok, isn't it? [CLS]"), "it's a-ok, isn't it? [cls]");
  });
});

describe('recall arithmetic', () => {
  test('numpyArgsort reproduces np.argsort (numpy\'s introsort, ties included)', () => {
    // np.argsort of this int16 array (numpy's generic introsort path, the one float32 rows take in numpy 1.24).
    const v = [3, 2, 2, 3, 2, 3, 3, 0, 0, 1, 1, 3, 3, 0, 1, 3, 0, 3, 0, 1, 3, 1, 1, 1, 2, 1, 3, 1, 1, 2, 2, 2, 2, 3, 3, 3, 2, 2, 1, 3, 1, 0, 3, 0, 3, 2, 0, 0, 1, 0, 0, 2, 3, 1, 3, 3, 3, 2, 1, 2];
    const expected = [13, 50, 49, 7, 8, 41, 47, 46, 18, 43, 16, 40, 23, 22, 21, 19, 38, 14, 25, 10, 9, 48, 28, 53, 58, 27, 29, 45, 51, 57, 37, 36, 59, 1, 31, 30, 24, 2, 4, 32, 33, 56, 55, 54, 52, 3, 5, 6, 12, 15, 44, 17, 42, 20, 39, 26, 35, 34, 11, 0];
    assert.deepEqual([...numpyArgsort(v)], expected);
    // Up to 16 entries it is an insertion sort: stable.
    assert.deepEqual([...numpyArgsort([1, 0, 1, 0, 1])], [1, 3, 0, 2, 4]);
    // Any input comes out sorted: many ties, and an organ-pipe row, which drives numpy's
    // median-of-3 quicksort past its depth limit into the heapsort fallback.
    const ties = Array.from({ length: 5000 }, (_, i) => ((i * 7919) % 101) - 50);
    const organPipe = Array.from({ length: 4096 }, (_, i) => (i < 2048 ? i : 4095 - i));
    for (const big of [ties, organPipe]) {
      const order = numpyArgsort(big);
      for (let i = 1; i < order.length; i++) assert.ok(big[order[i - 1]] <= big[order[i]]);
      assert.equal(new Set(order).size, big.length);
    }
  });

  for (const [model, runs] of Object.entries(REF.models)) {
    for (const [k, run] of Object.entries(runs.runs)) {
      test(`${model}, k_test ${k}: ranks and recall from the reference score matrices`, async () => {
        const g = await goldens(run.file);
        const i2t = (await g('i2t/score')) as Float32Array;
        const t2i = (await g('t2i/score')) as Float32Array;
        const ranks = { i2t: [] as number[], t2i: [] as number[] };
        for (let i = 0; i < 8; i++) ranks.i2t.push(queryRank(i2t.subarray(i * 40, i * 40 + 40), REF.img2txt[i]));
        for (let t = 0; t < 40; t++) ranks.t2i.push(queryRank(t2i.subarray(t * 8, t * 8 + 8), [REF.txt2img[t]]));
        assert.deepEqual(ranks, run.ranks);
        assert.deepEqual(recallFigures(ranks), run.recall);
        for (let i = 0; i < 8; i++) {
          const row = i2t.subarray(i * 40, i * 40 + 40);
          assert.equal(bestCaseRank(row, REF.img2txt[i]), run.ranks_ties_best_case.i2t[i]);
          assert.equal(worstCaseRank(row, REF.img2txt[i]), run.ranks_ties_worst_case.i2t[i]);
        }
      });
    }
  }

  test('topK: descending, equal values by lower index', () => {
    const r = topK([0.5, 0.9, 0.5, 0.1, 0.9, 0.5], 4);
    assert.deepEqual([...r.indices], [1, 4, 0, 2]);
    assert.deepEqual([...r.values], [0.9, 0.9, 0.5, 0.5].map(Math.fround));
  });
});

function checkAgainstReference(res: EvaluationResult, run: RunRef, g: (name: string) => Promise<Float32Array | BigInt64Array>) {
  return (async () => {
    assert.deepEqual(res.kEffective, run.k_effective);
    assert.deepEqual(res.cleanedCaptions, REF.texts.map((t) => t.cleaned));
    assert.deepEqual(nums(res.inputIds.data), nums(await g('text/input_ids')));
    assert.deepEqual(nums(res.attentionMask.data), nums(await g('text/attention_mask')));
    assert.ok(maxAbsDiff(res.imageFeatures.data, (await g('feat/image')) as Float32Array) <= 1e-5, 'image features');
    assert.ok(maxAbsDiff(res.textFeatures.data, (await g('feat/text')) as Float32Array) <= 1e-5, 'text features');
    assert.ok(maxAbsDiff(res.similarities!.data, (await g('itc/sims')) as Float32Array) <= 1e-5, 'itc/sims');
    for (const dir of ['i2t', 't2i'] as const) {
      assert.deepEqual(nums(res[dir].topkIdx), nums(await g(`${dir}/topk_idx`)), `${dir}/topk_idx`);
      assert.ok(maxAbsDiff(res[dir].topkSim, (await g(`${dir}/topk_sim`)) as Float32Array) <= 1e-5, `${dir}/topk_sim`);
      const d = maxAbsDiff(res[dir].itmLogit1, (await g(`${dir}/itm_logit1`)) as Float32Array);
      assert.ok(d <= 1e-4, `${dir}/itm_logit1: ${d}`);
    }
    const scores = { i2t: scoreMatrix(res.i2t, 8, 40), t2i: scoreMatrix(res.t2i, 40, 8) };
    for (const dir of ['i2t', 't2i'] as const) {
      const ref = (await g(`${dir}/score`)) as Float32Array;
      const d = maxAbsDiff(scores[dir], ref);
      assert.ok(d <= 1e-4, `${dir}/score: ${d}`);
      // The fillers are exactly -100, in exactly the reference's cells.
      for (let c = 0; c < ref.length; c++) assert.equal(scores[dir][c] === -100, ref[c] === -100, `${dir}/score cell ${c}`);
    }
    // numpy's tie order reproduced: every rank and every figure exactly.
    assert.deepEqual(res.ranks, run.ranks);
    assert.deepEqual(res.recall, run.recall);
    for (const dir of ['i2t', 't2i'] as const) {
      res.ranks[dir].forEach((r, q) => {
        assert.ok(r >= run.ranks_ties_best_case[dir][q] && r <= run.ranks_ties_worst_case[dir][q], `${dir} query ${q}: rank ${r} outside the tie bounds`);
      });
    }
  })();
}

for (const name of ['tiny', 'tiny-384'] as const) {
  describe(`eval on the Karpathy-format fixture, model ${name}`, () => {
    let model: BlipForImageTextRetrieval;
    before(async () => {
      model = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/${name}`);
    });
    after(() => model.dispose());

    for (const k of ['4', '256']) {
      test(`k_test ${k} reproduces the reference (scores, features, ids, ranks, recall)`, async () => {
        const run = REF.models[name].runs[k];
        const split = await readKarpathySplit(DATASET);
        assert.deepEqual(split.images, REF.images);
        assert.deepEqual(split.img2txt, REF.img2txt);
        assert.deepEqual(split.txt2img, REF.txt2img);
        const kvBefore = model.crossKVRuns;
        const res = await evaluateRetrieval(model, split, { kTest: Number(k), imageRoot: IMAGES, keepSimilarities: true });
        await checkAgainstReference(res, run, await goldens(run.file));
        assert.equal(model.crossKVRuns - kvBefore, 8, 'one cross-attention K/V pass per image, both directions together');
      });
    }
  });
}

describe('eval encoding cache', () => {
  let model: BlipForImageTextRetrieval;
  let dir: string;
  before(async () => {
    model = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`);
    dir = mkdtempSync(join(tmpdir(), 'blip-eval-cache-'));
  });
  after(async () => {
    await model.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the model key is stable and tells checkpoints apart', async () => {
    const again = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`);
    const other = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny-384`);
    try {
      assert.equal(await modelCacheKey(again), await modelCacheKey(model));
      assert.notEqual(await modelCacheKey(other), await modelCacheKey(model));
    } finally {
      await again.dispose();
      await other.dispose();
    }
  });

  test('entries round-trip; truncated, zero-filled or foreign bytes are rejected', () => {
    const bytes = encodeEntry({ a: { data: new Float32Array([1, 2, 3, 4, 5, 6]), dims: [2, 3] }, b: { data: new Float32Array([7]), dims: [1] } });
    const back = decodeEntry(bytes)!;
    assert.deepEqual([...back.a.data], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(back.a.dims, [2, 3]);
    assert.deepEqual([...back.b.data], [7]);
    assert.equal(decodeEntry(bytes.subarray(0, bytes.length - 1)), undefined);
    assert.equal(decodeEntry(bytes.subarray(0, 20)), undefined);
    assert.equal(decodeEntry(Buffer.concat([bytes, Buffer.from([0])])), undefined);
    assert.equal(decodeEntry(Buffer.alloc(bytes.length)), undefined);
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 3] ^= 0x40;
    assert.equal(decodeEntry(flipped), undefined);
  });

  test('a rerun resumes from the cache: no image, text or ITM is computed again; damaged entries are redone', async () => {
    const split = await readKarpathySplit(DATASET);
    const run = REF.models.tiny.runs['4'];
    const g = await goldens(run.file);
    const modelKey = await modelCacheKey(model);
    const evalWith = async () => {
      const cache = new EncodingCache(dir, modelKey);
      await cache.init({ model: 'tiny' });
      const vision = model.visionRuns;
      const kv = model.crossKVRuns;
      const res = await evaluateRetrieval(model, split, { kTest: 4, imageRoot: IMAGES, store: cache, modelKey, keepSimilarities: true });
      return { res, cache, visionRuns: model.visionRuns - vision, crossKVRuns: model.crossKVRuns - kv };
    };

    const first = await evalWith();
    assert.equal(first.res.work.imagesEncoded, 8);
    assert.ok(first.visionRuns >= 1);
    await checkAgainstReference(first.res, run, g);
    const folder = first.cache.folder;
    assert.deepEqual(readdirSync(folder).sort(), ['image-embeds', 'image-states', 'itm', 'model.json', 'text']);
    assert.equal(readdirSync(join(folder, 'image-states')).length, 8);
    assert.ok(readdirSync(folder, { recursive: true }).every((f) => !String(f).includes('.tmp-')), 'no temporary files left');

    const second = await evalWith();
    assert.equal(second.visionRuns, 0, 'the second run encodes no image');
    assert.equal(second.crossKVRuns, 0, 'and runs no ITM');
    assert.deepEqual(second.res.work, { imagesEncoded: 0, textsEncoded: 0, itmGroupsRun: 0, itmPairsRun: 0, itmGroupsCached: 8 });
    assert.equal(second.cache.written, 0);
    assert.deepEqual(second.res.recall, first.res.recall);
    assert.deepEqual([...second.res.i2t.itmLogit1], [...first.res.i2t.itmLogit1]);
    assert.deepEqual([...second.res.t2i.itmLogit1], [...first.res.t2i.itmLogit1]);
    assert.deepEqual([...second.res.imageFeatures.data], [...first.res.imageFeatures.data]);

    // Simulate a crash mid-write (without the rename): image 0's features half-written, image 1's
    // states zero-filled at full length, every ITM entry cut; a stray temporary file lying around.
    const key = (i: number) => sha256Hex(modelKey, 'image', readFileSync(join(IMAGES, REF.images[i])));
    const embeds0 = join(folder, 'image-embeds', `${key(0)}.bin`);
    truncateSync(embeds0, Math.floor(statSync(embeds0).size / 2));
    const states1 = join(folder, 'image-states', `${key(1)}.bin`);
    writeFileSync(states1, Buffer.alloc(statSync(states1).size));
    const itm = readdirSync(join(folder, 'itm'));
    for (const f of itm) truncateSync(join(folder, 'itm', f), 100);
    writeFileSync(join(folder, 'image-embeds', `${key(2)}.bin.tmp-1-deadbeef`), 'partial');

    const third = await evalWith();
    assert.equal(third.res.work.imagesEncoded, 2, 'exactly the two damaged images are encoded again');
    assert.equal(third.res.work.itmGroupsRun, 8);
    assert.equal(third.cache.rejected, 2 + itm.length);
    await checkAgainstReference(third.res, run, g);

    const fourth = await evalWith();
    assert.equal(fourth.visionRuns + fourth.crossKVRuns, 0, 'the repaired cache is complete again');
    assert.equal(fourth.cache.rejected, 0);
  });

  test('karpathySplit checks the annotation format', () => {
    assert.throws(() => karpathySplit({}), /JSON list/);
    assert.throws(() => karpathySplit([{ caption: ['x'] }]), /entry 0 has no "image"/);
    assert.throws(() => karpathySplit([{ image: 'a.jpg', caption: [] }]), /entry 0 \(a\.jpg\) needs "caption"/);
    assert.deepEqual(karpathySplit([{ image: 'a.jpg', caption: 'one' }, { image: 'b.jpg', caption: ['two', 'three'] }]), {
      images: ['a.jpg', 'b.jpg'], captions: ['one', 'two', 'three'], img2txt: [[0], [1, 2]], txt2img: [0, 1, 1],
    });
  });
});

describe('blip-itm eval', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'blip-eval-cli-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const cli = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: `${FIXTURES}/__no_cache__` },
  });

  test('--json prints LAVIS\'s keys with the reference figures; the table shows them too', () => {
    const args = ['eval', '--model', `${FIXTURES}/models/tiny`, '--annotations', DATASET, '--images', IMAGES, '--k-test', '4', '--cache', dir];
    const r = cli(...args, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${JSON.stringify(REF.models.tiny.runs['4'].recall)}\n`);
    const t = cli(...args);
    assert.equal(t.status, 0, t.stderr);
    const lines = t.stdout.trim().split('\n');
    assert.match(lines[0], /dataset\.json: 8 images, 40 texts; .*k_test 4/);
    assert.match(lines[2], /^TR@1\s+TR@5\s+TR@10\s+IR@1\s+IR@5\s+IR@10\s+TR mean\s+IR mean\s+r_mean$/);
    assert.match(lines[4], /^12\.5\s+37\.5\s+50\.0\s+10\.0\s+65\.0\s+100\.0\s+33\.3\s+58\.3\s+45\.8$/);
  });

  test('errors: usage exit 2, a missing image or annotation file exit 1, one line each', () => {
    const usage = cli('eval', '--images', IMAGES);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /^blip-itm: eval: give --annotations/);
    const k = cli('eval', '--annotations', DATASET, '--images', IMAGES, '--k-test', '0');
    assert.equal(k.status, 2);
    assert.match(k.stderr, /--k-test must be a positive integer/);
    const missing = cli('eval', '--annotations', `${dir}/nope.json`, '--images', IMAGES);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope\.json: file not found/);
    const ann = join(dir, 'one.json');
    writeFileSync(ann, JSON.stringify([{ image: 'holiday/missing.jpg', caption: ['x'] }]));
    const img = cli('eval', '--model', `${FIXTURES}/models/tiny`, '--annotations', ann, '--images', IMAGES, '--no-cache');
    assert.equal(img.status, 1);
    assert.equal(img.stderr.trim().split('\n').length, 1);
    assert.match(img.stderr, /holiday\/missing\.jpg: image file not found/);
  });
});
