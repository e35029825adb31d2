import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { visionTokens } from '../src/checkpoint/config.js';
import { crc32 } from '../src/checkpoint/zip.js';
import { ScoringEngine } from '../src/engine/scoring-engine.js';
import {
  DeadlineExceededError, EngineClosedError, EngineOverloadedError, type EngineStage, JobCancelledError, type PairOutcome,
} from '../src/engine/types.js';
import { ImageError, ImageTooLargeError, UsageError } from '../src/errors.js';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { matchProbability } from '../src/tensor.js';
import { FIXTURES } from './helpers/goldens.js';

const TINY = `${FIXTURES}/models/tiny`;
const IMAGES = ['coco_000000039769.png', 'skimage_chelsea.png', 'skimage_rocket.jpg'].map((f) => `${FIXTURES}/images/${f}`);
const LONG = Array.from({ length: 700 }, (_, i) => `word${i % 50}`).join(' ');
const TEXTS = ['two cats laying on a pink blanket next to remote controls', 'a rocket', 'a cat with green eyes', LONG];
const TOL = 1e-6;

interface Ref { logits: [number, number]; cosine: number }

/**
 * What `blip-itm score` gives for one (image, text) pair scored alone: the image and the text
 * each encoded on their own (no padding), through the model's methods the CLI calls.
 */
async function scoreAlone(model: BlipForImageTextRetrieval, image: string | Uint8Array, text: string): Promise<Ref> {
  const enc = await model.encodeImages(await model.processor.preprocessImages([image]));
  const tokens = model.processor.tokenize([text], { truncation: true });
  const cos = model.cosine(enc, await model.encodeTexts(tokens)).data[0];
  const l = (await model.itmForImage(enc, 0, tokens)).data;
  return { logits: [l[0], l[1]], cosine: cos };
}

function assertClose(actual: { itmLogits: [number, number]; cosine: number; itmProbability: number }, ref: Ref, what: string): void {
  const d = Math.max(Math.abs(actual.itmLogits[0] - ref.logits[0]), Math.abs(actual.itmLogits[1] - ref.logits[1]), Math.abs(actual.cosine - ref.cosine));
  assert.ok(d <= TOL, `${what}: max abs diff ${d}`);
  assert.ok(Math.abs(actual.itmProbability - matchProbability(ref.logits[0], ref.logits[1])) <= TOL, `${what}: probability`);
}

/** A distinct small PNG per seed (different pixels, so different bytes and encodings). */
function syntheticPng(seed: number): Promise<Buffer> {
  const w = 24 + (seed % 5) * 4;
  const h = 20 + (seed % 3) * 6;
  const px = Buffer.alloc(w * h * 3);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < px.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    px[i] = x >>> 24;
  }
  return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

function pngChunk(type: string, data: Buffer): Buffer {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0);
  b.write(type, 4, 'ascii');
  data.copy(b, 8);
  b.writeUInt32BE(crc32(b.subarray(4, 8 + data.length)), 8 + data.length);
  return b;
}

/** A PNG header claiming 30000 x 30000 pixels with a few bytes of data (nothing is ever decoded). */
function hugePngHeader(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(30000, 0);
  ihdr.writeUInt32BE(30000, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(64))), pngChunk('IEND', Buffer.alloc(0))]);
}

/** Bytes of one cached encoding: float32 states [tokens, hidden] and features. */
function entryBytes(model: BlipForImageTextRetrieval): number {
  const v = model.config.vision_config;
  return 4 * (visionTokens(v) * v.hidden_size + model.config.image_text_hidden_size);
}

describe('ScoringEngine (tiny model)', () => {
  let model: BlipForImageTextRetrieval;
  const refs = new Map<string, Ref>();
  const ref = async (image: string | Uint8Array, key: string, text: string): Promise<Ref> => {
    const k = `${key}\n${text}`;
    if (!refs.has(k)) refs.set(k, await scoreAlone(model, image, text));
    return refs.get(k)!;
  };

  before(async () => {
    model = await BlipForImageTextRetrieval.fromPretrained(TINY);
  });
  after(() => model.dispose());

  test('score, rank, embedImages, embedTexts and scorePairs equal the pairs scored alone', async () => {
    const engine = new ScoringEngine(model);
    try {
      const { pairs } = await engine.score({ images: IMAGES.map((path) => ({ path })), texts: TEXTS });
      assert.equal(pairs.length, IMAGES.length * TEXTS.length);
      for (const [k, p] of pairs.entries()) {
        assert.deepEqual([p.image, p.text], [Math.floor(k / TEXTS.length), k % TEXTS.length], 'image-major order');
        assertClose(p, await ref(IMAGES[p.image], IMAGES[p.image], TEXTS[p.text]), `score pair ${k}`);
      }

      // Many captions of one image: one key/value pass even past maxBatch.
      const many = Array.from({ length: 40 }, (_, i) => `caption ${i} of many`);
      const kvRuns = model.crossKVRuns;
      const manyScores = await engine.score({ images: [{ path: IMAGES[2] }], texts: many });
      assert.equal(model.crossKVRuns - kvRuns, 1);
      for (const p of manyScores.pairs.filter((_, k) => k % 13 === 0)) assertClose(p, await ref(IMAGES[2], IMAGES[2], many[p.text]), `many ${p.text}`);

      const ranked = await engine.rank({ image: { bytes: readFileSync(IMAGES[0]) }, texts: TEXTS, topN: 3 });
      assert.equal(ranked.results.length, 3);
      const all = await Promise.all(TEXTS.map(async (t, index) => ({ index, r: await ref(IMAGES[0], IMAGES[0], t) })));
      all.sort((a, b) => (b.r.logits[1] - b.r.logits[0]) - (a.r.logits[1] - a.r.logits[0]));
      assert.deepEqual(ranked.results.map((r) => r.index), all.slice(0, 3).map((a) => a.index));
      for (const r of ranked.results) {
        assert.equal(r.text, TEXTS[r.index]);
        assertClose(r, all.find((a) => a.index === r.index)!.r, `rank ${r.index}`);
      }

      const imageEmbeds = await engine.embedImages(IMAGES.map((path) => ({ path })));
      const direct = await model.encodeImages(await model.processor.preprocessImages(IMAGES));
      const E = model.config.image_text_hidden_size;
      imageEmbeds.forEach((e, i) => {
        assert.equal(e.length, E);
        e.forEach((v, k) => assert.ok(Math.abs(v - direct.embeds.data[i * E + k]) <= TOL));
      });
      const textEmbeds = await engine.embedTexts(TEXTS);
      for (const [i, t] of TEXTS.entries()) {
        const alone = await model.encodeTexts(model.processor.tokenize([t], { truncation: true }));
        textEmbeds[i].forEach((v, k) => assert.ok(Math.abs(v - alone.embeds.data[k]) <= TOL, `text ${i} feature ${k}`));
      }

      const bulk = await engine.scorePairs(TEXTS.map((text, k) => ({ image: { path: IMAGES[k % IMAGES.length] }, text })));
      for (const [k, o] of bulk.entries()) {
        assert.ok(o.ok, `pair ${k}`);
        assertClose(o, await ref(IMAGES[k % IMAGES.length], IMAGES[k % IMAGES.length], TEXTS[k]), `scorePairs ${k}`);
      }
    } finally {
      await engine.close();
    }
  });

  test('36 concurrent jobs get their own results, in batches larger than 1', async () => {
    const batches: Array<[EngineStage, number]> = [];
    const engine = new ScoringEngine(model, { maxBatch: 8, maxWaitMs: 20, events: { batch: (stage, size) => batches.push([stage, size]) } });
    try {
      const pngs = await Promise.all(Array.from({ length: 36 }, (_, i) => syntheticPng(1000 + i)));
      const captions = pngs.map((_, i) => [`caption number ${i}`, `another ${i % 7} words for job ${i}`]);
      const results = await Promise.all(pngs.map((bytes, i) => engine.score({ images: [{ bytes, label: `job${i}.png` }], texts: captions[i] })));
      for (const [i, r] of results.entries()) {
        assert.equal(r.pairs.length, 2);
        for (const p of r.pairs) assertClose(p, await ref(pngs[i], `syn${i}`, captions[i][p.text]), `job ${i} text ${p.text}`);
      }
      for (const stage of ['vision', 'text', 'itm'] as const) {
        const sizes = batches.filter(([s]) => s === stage).map(([, n]) => n);
        assert.ok(Math.max(...sizes) > 1, `${stage} batches ${sizes.join(',')}`);
        assert.equal(sizes.reduce((a, b) => a + b, 0), stage === 'vision' ? 36 : 72, `${stage} items`);
      }
      assert.equal(batches.filter(([s]) => s === 'prepare').length, 36);

      // Single pairs of distinct images go as rows of one ITM run, each with its own keys/values.
      const singles = await Promise.all(Array.from({ length: 8 }, (_, i) => syntheticPng(2000 + i)));
      const kvRuns = model.crossKVRuns;
      const bulk = await engine.scorePairs(singles.map((bytes, i) => ({ image: { bytes }, text: `single ${i}` })));
      assert.ok(model.crossKVRuns - kvRuns < singles.length, `${model.crossKVRuns - kvRuns} key/value runs for ${singles.length} images`);
      for (const [i, o] of bulk.entries()) {
        assert.ok(o.ok);
        assertClose(o, await ref(singles[i], `single${i}`, `single ${i}`), `single pair ${i}`);
      }
    } finally {
      await engine.close();
    }
  });

  test('repeated bytes come from the cache; concurrent equal bytes are encoded once', async () => {
    const cacheEvents: boolean[] = [];
    const engine = new ScoringEngine(model, { events: { cache: (hit) => cacheEvents.push(hit) } });
    try {
      const png = await syntheticPng(7);
      const copy = Buffer.from(png);
      const first = await engine.score({ images: [{ bytes: png }], texts: ['a'] });
      assert.ok(png.equals(copy), "the caller's bytes are left as they were");
      const runs = model.visionRuns;
      const again = await engine.score({ images: [{ bytes: Buffer.from(png) }], texts: ['a'] });
      assert.equal(model.visionRuns, runs, 'no vision run for bytes seen before');
      assert.deepEqual(again.pairs, first.pairs);
      assert.deepEqual(cacheEvents, [false, true]);

      const other = await syntheticPng(8);
      const both = await Promise.all([1, 2, 3].map(() => engine.score({ images: [{ bytes: Buffer.from(other) }], texts: ['b'] })));
      assert.equal(model.visionRuns, runs + 1, 'three concurrent jobs, one encode');
      assert.deepEqual(both[1].pairs, both[0].pairs);
      const s = engine.stats;
      assert.deepEqual([s.cacheEntries, s.cacheHits, s.cacheMisses, s.queueDepth], [2, 3, 2, 0]);
      assert.equal(s.cacheBytes, 2 * entryBytes(model));
    } finally {
      await engine.close();
    }
  });

  test('the cache is bounded in bytes (least recently used evicted); 0 disables it', async () => {
    const entry = entryBytes(model);
    const engine = new ScoringEngine(model, { cacheBytes: 2 * entry });
    const off = new ScoringEngine(model, { cacheBytes: 0 });
    try {
      const [a, b, c] = await Promise.all([20, 21, 22].map(syntheticPng));
      for (const bytes of [a, b, a, c]) await engine.score({ images: [{ bytes }], texts: ['x'] });
      assert.deepEqual([engine.stats.cacheEntries, engine.stats.cacheBytes], [2, 2 * entry]);
      const runs = model.visionRuns;
      await engine.score({ images: [{ bytes: a }], texts: ['x'] });
      assert.equal(model.visionRuns, runs, 'a was used recently and kept');
      await engine.score({ images: [{ bytes: b }], texts: ['x'] });
      assert.equal(model.visionRuns, runs + 1, 'b was evicted');

      await off.score({ images: [{ bytes: a }], texts: ['x'] });
      await off.score({ images: [{ bytes: a }], texts: ['x'] });
      assert.deepEqual([off.stats.cacheEntries, off.stats.cacheMisses], [0, 2]);
    } finally {
      await Promise.all([engine.close(), off.close()]);
    }
  });

  test('a full queue rejects at once; the accepted jobs still finish', async () => {
    const engine = new ScoringEngine(model, { maxQueue: 2 });
    try {
      const [a, b, c] = await Promise.all([30, 31, 32].map(syntheticPng));
      const accepted = [a, b].map((bytes) => engine.score({ images: [{ bytes }], texts: ['x'] }));
      assert.equal(engine.stats.queueDepth, 2);
      let settled = false;
      const refused = engine.score({ images: [{ bytes: c }], texts: ['x'] }).finally(() => (settled = true));
      await Promise.resolve();
      await Promise.resolve();
      assert.ok(settled, 'refused without waiting for the queue');
      await assert.rejects(refused, (e) => e instanceof EngineOverloadedError && /2 jobs/.test(e.message));
      for (const r of await Promise.all(accepted)) assert.equal(r.pairs.length, 1);
      assert.equal(engine.stats.queueDepth, 0);
      assert.equal((await engine.score({ images: [{ bytes: c }], texts: ['x'] })).pairs.length, 1);
    } finally {
      await engine.close();
    }
  });

  test('deadline and abort reject, and the work not yet started is dropped', async () => {
    const engine = new ScoringEngine(model, { maxBatch: 2 });
    try {
      const pngs = await Promise.all(Array.from({ length: 9 }, (_, i) => syntheticPng(40 + i)));
      const runs = model.visionRuns;
      const busy = engine.score({ images: pngs.slice(0, 8).map((bytes) => ({ bytes })), texts: ['x'] });
      const started = performance.now();
      await assert.rejects(engine.score({ images: [{ bytes: pngs[8] }], texts: ['y'] }, { deadlineMs: 1 }), DeadlineExceededError);
      assert.ok(performance.now() - started < 1000, 'rejected at its deadline');

      const controller = new AbortController();
      const aborted = engine.score({ images: [{ bytes: await syntheticPng(60) }], texts: ['z'] }, { signal: controller.signal });
      controller.abort();
      await assert.rejects(aborted, JobCancelledError);
      await assert.rejects(engine.embedTexts(['a'], { signal: AbortSignal.abort() }), JobCancelledError);

      assert.equal((await busy).pairs.length, 8);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(model.visionRuns - runs, 8, 'only the busy job\'s images were encoded');
      assert.equal(engine.stats.queueDepth, 0);
      await assert.rejects(engine.score({ images: [{ bytes: pngs[0] }], texts: ['x'] }, { deadlineMs: -1 }), UsageError);
    } finally {
      await engine.close();
    }
  });

  test('bad images and texts: scorePairs fails only their pairs; score names the image', async () => {
    const engine = new ScoringEngine(model);
    try {
      const good = readFileSync(IMAGES[1]);
      const runs = model.visionRuns;
      const out: PairOutcome[] = await engine.scorePairs([
        { image: { bytes: good }, text: 'a cat' },
        { image: { path: `${FIXTURES}/images/no-such-file.png` }, text: 'a cat' },
        { image: { bytes: Buffer.from('not an image at all'), label: 'junk.bin' }, text: 'a cat' },
        { image: { bytes: hugePngHeader(), label: 'huge.png' }, text: 'a cat' },
        { image: { bytes: good }, text: '' },
        { image: { bytes: good }, text: 42 as unknown as string },
        { image: { path: IMAGES[1] }, text: 'a dog' },
        { image: { bytes: good }, text: 'a dog' },
        { image: {} as never, text: 'a cat' },
      ]);
      assert.equal(out.length, 9);
      const errors = out.map((o) => (o.ok ? null : o.error));
      assert.equal(errors[0], null);
      assert.match(errors[1]!, /no-such-file\.png: file not found/);
      assert.match(errors[2]!, /^junk\.bin: not a readable image/);
      assert.match(errors[3]!, /^huge\.png: image is 30000x30000 = 900000000 pixels, over the limit/);
      assert.equal(errors[4], 'pairs[4].text is empty');
      assert.equal(errors[5], 'pairs[5].text must be a string, got number');
      assert.equal(errors[6], null);
      assert.equal(errors[7], null);
      assert.match(errors[8]!, /^pairs\[8\]\.image: expected \{bytes\} or \{path\}/);
      for (const e of errors) if (e) assert.ok(!e.includes('\n'), 'one line');
      assert.equal(model.visionRuns - runs, 1, 'the good image encoded once for all its pairs');
      const r = await ref(IMAGES[1], IMAGES[1], 'a dog');
      assertClose(out[6] as Extract<PairOutcome, { ok: true }>, r, 'path pair');
      assertClose(out[7] as Extract<PairOutcome, { ok: true }>, r, 'bytes pair');

      await assert.rejects(engine.score({ images: [{ bytes: Buffer.from('GIF89a garbage'), label: 'upload.gif' }], texts: ['x'] }),
        (e) => e instanceof ImageError && !(e instanceof ImageTooLargeError) && e.message.startsWith('upload.gif: '));
      await assert.rejects(engine.embedImages([{ bytes: new Uint8Array(0), label: 'empty.png' }]),
        (e) => e instanceof ImageError && e.message === 'empty.png: image is empty (0 bytes)');
      await assert.rejects(engine.score({ images: [{ bytes: hugePngHeader() }], texts: ['x'] }),
        (e) => e instanceof ImageTooLargeError && e.message.startsWith('images[0]: image is 30000x30000'));
      await assert.rejects(engine.score({ images: [{ bytes: good }], texts: ['ok', ''] }), /texts\[1\] is empty/);
      await assert.rejects(engine.score({ images: [], texts: ['x'] }), UsageError);
      await assert.rejects(engine.rank({ image: { bytes: good }, texts: ['x'], topN: 0 }), /topN must be a positive integer/);
      assert.equal(engine.stats.queueDepth, 0);
    } finally {
      await engine.close();
    }
  });

  test('close finishes the jobs in flight, then refuses new ones (event hooks that throw break nothing)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    const engine = new ScoringEngine(model, { events: { batch: () => { throw new Error('observer bug'); }, cache: () => { throw new Error('observer bug'); } } });
    const pngs = await Promise.all([70, 71, 72, 73].map(syntheticPng));
    const inFlight = pngs.map((bytes) => engine.score({ images: [{ bytes }], texts: ['x', 'y'] }));
    const closed = engine.close();
    await assert.rejects(engine.score({ images: [{ bytes: pngs[0] }], texts: ['x'] }), EngineClosedError);
    const results = await Promise.all(inFlight);
    await closed;
    for (const [i, r] of results.entries()) {
      for (const p of r.pairs) assertClose(p, await ref(pngs[i], `syn-close${i}`, ['x', 'y'][p.text]), `job ${i}`);
    }
    await engine.close();
    process.off('warning', onWarning);
    assert.ok(warnings.some((w) => w.includes('observer bug')));
    // The model is still usable after the engine is closed.
    assert.equal((await model.encodeTexts(model.processor.tokenize(['still here']))).count, 1);
  });

  test('fromPretrained: the model on its own thread gives the same numbers', async () => {
    const engine = await ScoringEngine.fromPretrained(TINY, { maxBatch: 4 });
    try {
      const pngs = await Promise.all([80, 81, 82].map(syntheticPng));
      const results = await Promise.all(pngs.map((bytes) => engine.score({ images: [{ bytes }, { path: IMAGES[2] }], texts: ['a', TEXTS[0]] })));
      for (const [i, r] of results.entries()) {
        for (const p of r.pairs) {
          const image = p.image === 0 ? pngs[i] : IMAGES[2];
          assertClose(p, await ref(image, p.image === 0 ? `syn${80 + i}` : IMAGES[2], ['a', TEXTS[0]][p.text]), `job ${i} pair ${p.image},${p.text}`);
        }
      }
      assert.equal(engine.stats.visionRuns, 4, 'three distinct images plus the shared one, once each');
      const bulk = await engine.scorePairs([{ image: { bytes: hugePngHeader() }, text: 'x' }, { image: { bytes: pngs[0] }, text: 'a' }]);
      assert.match((bulk[0] as { error: string }).error, /over the limit/);
      assert.deepEqual(bulk[1].ok && bulk[1].itmLogits, results[0].pairs[0].itmLogits);
    } finally {
      await engine.close();
    }
    await assert.rejects(engine.score({ images: [{ path: IMAGES[0] }], texts: ['x'] }), EngineClosedError);
    await assert.rejects(ScoringEngine.fromPretrained(`${FIXTURES}/no-such-model`), (e) => e instanceof Error && e.name === 'BlipError' && !e.message.includes('\n'));
  });

  test('the built dist/ runs both engines (worker files resolve there too)', async (t) => {
    const built = 'dist/engine/scoring-engine.js';
    const newest = Math.max(...readdirSync('src/engine').map((f) => statSync(`src/engine/${f}`).mtimeMs));
    if (!existsSync(built) || statSync(built).mtimeMs < newest) {
      t.skip('dist/ is missing or older than src/engine (npm run build)');
      return;
    }
    const script = `
      import { BlipForImageTextRetrieval, ScoringEngine } from './dist/index.js';
      const job = { images: [{ path: ${JSON.stringify(IMAGES[2])} }], texts: ['a rocket'] };
      const model = await BlipForImageTextRetrieval.fromPretrained(${JSON.stringify(TINY)});
      const local = new ScoringEngine(model);
      const a = await local.score(job);
      await local.close();
      await model.dispose();
      const hosted = await ScoringEngine.fromPretrained(${JSON.stringify(TINY)});
      const b = await hosted.score(job);
      await hosted.close();
      console.log(JSON.stringify([a.pairs[0], b.pairs[0]]));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const [a, b] = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.deepEqual(a, b);
    assertClose(a, await ref(IMAGES[2], IMAGES[2], 'a rocket'), 'dist engine');
  });
});
