import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { crc32, deflateSync } from 'node:zlib';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import type { RunningService } from '../src/server/service.js';
import { libraryEmbeddings, libraryScores, startTinyService, TINY, type Expected } from './helpers/blip-service.js';

// The real service: real engine, tiny fixture model, 127.0.0.1 on an ephemeral port. Every
// number is checked against the library's (the model called directly, as `blip-itm score` does).

const TOL = 1e-6;
const CAT = readFileSync('test/fixtures/images/coco_000000039769.png');
const COFFEE = readFileSync('test/fixtures/images/skimage_coffee.png');
const TEXTS = ['two cats laying on a pink blanket next to remote controls', 'a cup of coffee on a saucer', 'a rocket'];

let service: RunningService;
let model: BlipForImageTextRetrieval;
let base: string;
before(async () => {
  [service, model] = await Promise.all([startTinyService(), BlipForImageTextRetrieval.fromPretrained(TINY)]);
  base = service.url;
});
after(async () => {
  await service?.close();
  await model?.dispose();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const raw = body instanceof FormData || typeof body === 'string' || body instanceof Uint8Array;
  const r = await fetch(base + path, {
    method: 'POST',
    headers: raw ? headers : { 'content-type': 'application/json', ...headers },
    body: raw ? (body as BodyInit) : JSON.stringify(body),
  });
  const text = await r.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    assert.fail(`not JSON (status ${r.status}): ${text.slice(0, 200)}`);
  }
  return { status: r.status, json, headers: r.headers };
}

function assertError(r: { status: number; json: any }, status: number, code: string, what = ''): void {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.json)}`);
  assert.equal(r.json.error.code, code, `${what}: ${JSON.stringify(r.json)}`);
  assert.ok(r.json.error.message.length > 0 && !r.json.error.message.includes('\n'));
}

function assertClose(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= TOL, `${what}: ${actual} vs library ${expected}`);
}

function assertPair(p: { itm_logits: number[]; itm_probability: number; cosine: number }, e: Expected, what: string): void {
  assertClose(p.itm_logits[0], e.itmLogits[0], `${what} logit 0`);
  assertClose(p.itm_logits[1], e.itmLogits[1], `${what} logit 1`);
  assertClose(p.itm_probability, 1 / (1 + Math.exp(e.itmLogits[0] - e.itmLogits[1])), `${what} probability`);
  assertClose(p.cosine, e.cosine, `${what} cosine`);
}

const form = (images: Array<[Buffer, string]>, texts: string[], textField = 'text') => {
  const f = new FormData();
  for (const [bytes, name] of images) f.append('image', new Blob([new Uint8Array(bytes)], { type: 'image/png' }), name);
  for (const t of texts) f.append(textField, t);
  return f;
};

test('POST /v1/score, JSON and multipart: the library\'s numbers, image-major, labelled', async () => {
  const expected = await libraryScores(model, [CAT, COFFEE], TEXTS);
  const json = await post('/v1/score', { images: [CAT.toString('base64'), COFFEE.toString('base64')], texts: TEXTS });
  const multi = await post('/v1/score', form([[CAT, 'cat.png'], [COFFEE, 'coffee.png']], TEXTS));
  for (const [r, labels] of [[json, ['#0', '#1']], [multi, ['cat.png', 'coffee.png']]] as const) {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.model, TINY);
    assert.equal(r.json.pairs.length, 6);
    r.json.pairs.forEach((p: any, k: number) => {
      const i = Math.floor(k / TEXTS.length);
      const j = k % TEXTS.length;
      assert.equal(p.image, labels[i]);
      assert.equal(p.text, TEXTS[j]);
      assertPair(p, expected[i][j], `pair ${k}`);
    });
  }
});

test('POST /v1/rank, JSON and multipart: sorted by ITM, top_n, the library\'s numbers', async () => {
  const expected = (await libraryScores(model, [CAT], TEXTS))[0];
  const order = TEXTS.map((_, j) => j).sort((a, b) => (expected[b].itmLogits[1] - expected[b].itmLogits[0]) - (expected[a].itmLogits[1] - expected[a].itmLogits[0]));
  const json = await post('/v1/rank', { image: CAT.toString('base64'), documents: TEXTS });
  const f = form([[CAT, 'cat.png']], TEXTS, 'documents');
  f.append('top_n', '2');
  const multi = await post('/v1/rank', f);
  for (const [r, n] of [[json, 3], [multi, 2]] as const) {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.results.map((x: any) => x.index), order.slice(0, n));
    for (const x of r.json.results) {
      assert.equal(x.text, TEXTS[x.index]);
      assertPair({ itm_logits: x.itm_logits, itm_probability: x.relevance_score, cosine: x.cosine }, expected[x.index], `document ${x.index}`);
    }
  }
});

test('POST /v1/embeddings: text and image features equal the library\'s; float and base64', async () => {
  const expected = await libraryEmbeddings(model, [CAT, COFFEE], TEXTS);
  const texts = await post('/v1/embeddings', { input: TEXTS, modality: 'text' });
  const images = await post('/v1/embeddings', { input: [CAT.toString('base64'), COFFEE.toString('base64')], modality: 'image' });
  const b64 = await post('/v1/embeddings', { input: TEXTS[1], encoding_format: 'base64' });
  for (const [r, exp] of [[texts, expected.texts], [images, expected.images]] as const) {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.data.length, exp.length);
    r.json.data.forEach((d: any, i: number) => {
      assert.equal(d.index, i);
      assert.equal(d.embedding.length, exp[i].length);
      d.embedding.forEach((v: number, k: number) => assertClose(v, exp[i][k], `embedding ${i}[${k}]`));
    });
  }
  assert.equal(b64.status, 200);
  const decoded = new Float32Array(new Uint8Array(Buffer.from(b64.json.data[0].embedding, 'base64')).buffer);
  decoded.forEach((v, k) => assertClose(v, expected.texts[1][k], `base64 embedding[${k}]`));
  // A text feature's dot product with an image feature is the score's cosine.
  const cos = texts.json.data[0].embedding.reduce((s: number, v: number, k: number) => s + v * images.json.data[0].embedding[k], 0);
  assertClose(cos, (await libraryScores(model, [CAT], [TEXTS[0]]))[0][0].cosine, 'dot product');
});

/** A PNG whose header claims width x height, with one row of pixel data (the check happens before decoding). */
function pngHeader(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1 + width * 3))), chunk('IEND', Buffer.alloc(0))]);
}

test('bad input gets its documented status and JSON error, and a valid request right after succeeds', async () => {
  const valid = async () => {
    const r = await post('/v1/score', form([[CAT, 'cat.png']], [TEXTS[0]]));
    assert.equal(r.status, 200, JSON.stringify(r.json));
  };
  const cases: Array<[string, () => Promise<{ status: number; json: any }>, number, string]> = [
    ['malformed multipart', () => post('/v1/score', '--b\r\nContent-Disposition: form-data; name="text"\r\n\r\nabc\r\n--b\r\nno-colon-header\r\n\r\nx', { 'content-type': 'multipart/form-data; boundary=b' }), 400, 'malformed_body'],
    ['a non-image file', () => post('/v1/score', form([[Buffer.from('hello, not an image\n'), 'notes.txt']], [TEXTS[0]])), 415, 'not_an_image'],
    ['a non-image in JSON', () => post('/v1/score', { images: [Buffer.from('%PDF-1.4 not an image').toString('base64')], texts: ['a'] }), 415, 'not_an_image'],
    ['a 30000x30000 PNG header', () => post('/v1/score', form([[pngHeader(30000, 30000), 'huge.png']], [TEXTS[0]])), 413, 'image_too_large'],
    ['a 30000x30000 PNG header in JSON', () => post('/v1/rank', { image: pngHeader(30000, 30000).toString('base64'), documents: ['a'] }), 413, 'image_too_large'],
    ['an empty JSON body', () => post('/v1/score', '', { 'content-type': 'application/json' }), 400, 'malformed_body'],
    ['an empty body', () => post('/v1/score', new Uint8Array(0)), 400, 'malformed_body'],
    ['an empty multipart body', () => post('/v1/score', '', { 'content-type': 'multipart/form-data; boundary=b' }), 400, 'malformed_body'],
    ['10,000 texts', () => post('/v1/score', { images: [CAT.toString('base64')], texts: Array.from({ length: 10_000 }, (_, i) => `caption ${i}`) }), 422, 'too_many_texts'],
    ['10,000 texts, multipart', () => post('/v1/score', form([[CAT, 'cat.png']], Array.from({ length: 10_000 }, (_, i) => `caption ${i}`))), 422, 'too_many_texts'],
    ['a 1 MB text', () => post('/v1/score', { images: [CAT.toString('base64')], texts: ['x'.repeat(1 << 20)] }), 422, 'text_too_long'],
    ['a 1 MB text, multipart', () => post('/v1/score', form([[CAT, 'cat.png']], ['x'.repeat(1 << 20)])), 422, 'text_too_long'],
    ['wrong JSON types', () => post('/v1/score', { images: CAT.toString('base64'), texts: [1] }), 400, 'malformed_body'],
    ['wrong JSON types (rank)', () => post('/v1/rank', { image: [CAT.toString('base64')], documents: 'a' }), 400, 'malformed_body'],
    ['a JSON array body', () => post('/v1/score', [1, 2]), 400, 'malformed_body'],
    ['a body over 20 MB', () => post('/v1/score', form([[Buffer.alloc(21 << 20), 'big.png']], ['a'])), 413, 'body_too_large'],
  ];
  for (const [what, send, status, code] of cases) {
    const r = await send();
    assertError(r, status, code, what);
    await valid();
  }
  const health = await fetch(`${base}/healthz`);
  assert.equal(health.status, 200, 'the server is still up');
});

test('64 concurrent requests with different images and captions each get their own results; batches > 1', async () => {
  const { syntheticPng } = await import('./helpers/blip-service.js');
  const n = 64;
  const images = await Promise.all(Array.from({ length: n }, (_, i) => syntheticPng(100 + i)));
  const captions = images.map((_, i) => [`caption ${i} about a striped thing`, `another caption, number ${i * 7}`]);
  const expected = await Promise.all(images.map((im, i) => libraryScores(model, [im], captions[i])));
  const metricsBefore = await (await fetch(`${base}/metrics`)).text();
  const responses = await Promise.all(images.map((im, i) => (i % 2 === 0
    ? post('/v1/score', { images: [im.toString('base64')], texts: captions[i] })
    : post('/v1/score', form([[im, `img-${i}.png`]], captions[i])))));
  responses.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.pairs.length, 2);
    r.json.pairs.forEach((p: any, j: number) => {
      assert.equal(p.text, captions[i][j], `request ${i} got another caller's text`);
      assert.equal(p.image, i % 2 === 0 ? '#0' : `img-${i}.png`);
      assertPair(p, expected[i][0][j], `request ${i} pair ${j}`);
    });
  });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const series = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  for (const stage of ['vision', 'itm']) {
    const runs = series(metrics, `blip_engine_batch_size_count{stage="${stage}"}`) - series(metricsBefore, `blip_engine_batch_size_count{stage="${stage}"}`);
    const items = series(metrics, `blip_engine_batch_size_sum{stage="${stage}"}`) - series(metricsBefore, `blip_engine_batch_size_sum{stage="${stage}"}`);
    assert.ok(runs > 0 && items / runs > 1, `${stage}: ${items} items in ${runs} runs, expected batches larger than 1`);
    // The histogram shows it too: fewer runs of size <= 1 than runs in all.
    const ones = series(metrics, `blip_engine_batch_size_bucket{le="1",stage="${stage}"}`) - series(metricsBefore, `blip_engine_batch_size_bucket{le="1",stage="${stage}"}`);
    assert.ok(ones < runs, `${stage}: every run had one item`);
  }
  assert.match(metrics, /blip_http_requests_total\{route="\/v1\/score",method="POST",status="200"\} \d+/);
  assert.match(metrics, /blip_engine_image_cache_lookups_total\{result="miss"\} [1-9]/);
  assert.match(metrics, /blip_model_load_seconds [0-9.]+/);
  assert.match(metrics, /blip_engine_queue_depth 0/);
});

test('a repeated image is served from the cache: /metrics counts the hit', async () => {
  const hits = async () => Number(/blip_engine_image_cache_lookups_total\{result="hit"\} (\S+)/.exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
  const body = { images: [COFFEE.toString('base64')], texts: ['once more'] };
  const first = await post('/v1/score', body);
  const before = await hits();
  const again = await post('/v1/score', body);
  assert.equal(again.status, 200);
  assert.equal((await hits()) - before, 1);
  assert.deepEqual(again.json.pairs, first.json.pairs);
});

test('--max-queue 2: a burst gets 503 + Retry-After for the overflow and correct 200s for the rest', async () => {
  const { startTinyService: start, syntheticPng } = await import('./helpers/blip-service.js');
  // A long batch wait keeps the first jobs queued while the burst arrives.
  const small = await start({ engine: { maxQueue: 2, maxWaitMs: 300 } });
  try {
    const images = await Promise.all(Array.from({ length: 10 }, (_, i) => syntheticPng(300 + i)));
    const expected = await Promise.all(images.map((im) => libraryScores(model, [im], [TEXTS[0]])));
    const responses = await Promise.all(images.map((im) => fetch(`${small.url}/v1/score`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ images: [im.toString('base64')], texts: [TEXTS[0]] }),
    }).then(async (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), json: await r.json() }))));
    const ok = responses.filter((r) => r.status === 200);
    const refused = responses.filter((r) => r.status === 503);
    assert.equal(ok.length + refused.length, responses.length, `only 200 and 503: ${responses.map((r) => r.status)}`);
    assert.ok(ok.length >= 2, `at least the queue's 2 succeed: ${responses.map((r) => r.status)}`);
    assert.ok(refused.length >= 1, `the overflow is refused: ${responses.map((r) => r.status)}`);
    for (const r of refused) {
      assert.equal(r.json.error.code, 'overloaded');
      assert.ok(Number(r.retryAfter) >= 1);
    }
    responses.forEach((r, i) => { if (r.status === 200) assertPair(r.json.pairs[0], expected[i][0][0], `burst request ${i}`); });
  } finally {
    await small.close();
  }
});
