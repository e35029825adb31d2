import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { buildApp } from '../src/server/app.js';
import { EngineSlot } from '../src/server/context.js';
import { DeadlineExceededError, EngineOverloadedError } from '../src/engine/types.js';
import { EngineDouble } from './helpers/engine-double.js';

// The service's own behaviour around the engine: auth, limits, schemas, error mapping, readiness,
// cancellation. The engine here is a test double (numbers meaningless); server.test.ts checks
// results against the real engine and model.

const KEY = 'test-key-0123456789abcdef';
const engine = new EngineDouble();
const slot = new EngineSlot();
const { app } = await buildApp({ modelName: 'double', apiKey: KEY, slot, limits: { textsPerRequest: 4, charsPerText: 20, bodyBytes: 64 * 1024, imagesPerRequest: 3 } });
await app.listen({ host: '127.0.0.1', port: 0 });
const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
after(() => app.close());

const auth = { authorization: `Bearer ${KEY}` };
const PNG_1PX = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');

async function post(path: string, body: unknown, headers: Record<string, string> = auth): Promise<{ status: number; json: any; headers: Headers }> {
  const isForm = body instanceof FormData || body instanceof Uint8Array;
  const r = await fetch(base + path, {
    method: 'POST',
    headers: isForm || typeof body === 'string' ? headers : { 'content-type': 'application/json', ...headers },
    body: isForm || typeof body === 'string' ? (body as BodyInit) : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : undefined, headers: r.headers };
}

function assertError(r: { status: number; json: any }, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json.error.code, code);
  assert.equal(typeof r.json.error.message, 'string');
  assert.ok(!r.json.error.message.includes('\n'), 'one-line message');
  if (message) assert.match(r.json.error.message, message);
}

const valid = { images: [PNG_1PX.toString('base64')], texts: ['a cat'] };

test('before the engine is set: /healthz 200, /readyz and jobs 503 with Retry-After', async () => {
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  const ready = await fetch(`${base}/readyz`);
  assert.equal(ready.status, 503);
  assert.ok(Number(ready.headers.get('retry-after')) > 0);
  const r = await post('/v1/score', valid);
  assertError(r, 503, 'not_ready');
  assert.ok(Number(r.headers.get('retry-after')) > 0);
  slot.set(engine);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  assert.equal((await post('/v1/score', valid)).status, 200);
});

test('the API key: missing or wrong is 401, right is 200; /healthz, /readyz and the page need none', async () => {
  assertError(await post('/v1/score', valid, {}), 401, 'unauthorized');
  assertError(await post('/v1/score', valid, { authorization: 'Bearer wrong-key-0123456789abcdef' }), 401, 'unauthorized', /wrong API key/);
  assertError(await post('/v1/rank', valid, { authorization: `Basic ${KEY}` }), 401, 'unauthorized');
  assert.equal((await fetch(`${base}/metrics`)).status, 401);
  assert.equal((await fetch(`${base}/metrics`, { headers: auth })).status, 200);
  for (const path of ['/healthz', '/readyz', '/', '/page/app.js', '/openapi.json']) assert.equal((await fetch(base + path)).status, 200, path);
});

test('JSON bodies: wrong types, unknown fields, bad JSON and empty bodies are 400 with one line', async () => {
  assertError(await post('/v1/score', { images: 'x', texts: ['a'] }), 400, 'malformed_body', /images/);
  assertError(await post('/v1/score', { images: [PNG_1PX.toString('base64')], texts: [1, 2] }), 400, 'malformed_body', /texts/);
  assertError(await post('/v1/score', { images: [], texts: 'a cat' }), 400, 'malformed_body');
  assertError(await post('/v1/score', { images: [], text: ['typo'] }), 400, 'malformed_body');
  assertError(await post('/v1/rank', { image: PNG_1PX.toString('base64'), documents: ['a'], top_n: '2' }), 400, 'malformed_body', /top_n/);
  assertError(await post('/v1/rank', { image: PNG_1PX.toString('base64'), documents: ['a'], top_n: 0 }), 400, 'malformed_body');
  assertError(await post('/v1/embeddings', { input: [1], modality: 'text' }), 400, 'malformed_body');
  assertError(await post('/v1/embeddings', { input: ['a'], modality: 'audio' }), 400, 'malformed_body');
  assertError(await post('/v1/score', '{"images": [', { ...auth, 'content-type': 'application/json' }), 400, 'malformed_body');
  assertError(await post('/v1/score', '', { ...auth, 'content-type': 'application/json' }), 400, 'malformed_body', /empty/);
  assertError(await post('/v1/score', new Uint8Array(0), auth), 400, 'malformed_body', /empty/);
  assertError(await post('/v1/score', '', { ...auth, 'content-type': 'text/plain' }), 415, 'unsupported_media_type', /application\/json/);
  assertError(await post('/v1/score', 'hello', { ...auth, 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
  assertError(await post('/v1/score', { images: ['not base64!'], texts: ['a'] }), 400, 'malformed_body', /images\[0\].*base64/);
  assertError(await post('/v1/score', { images: ['https://example.com/cat.jpg'], texts: ['a'] }), 400, 'malformed_body', /never fetches/);
  assert.equal((await post('/v1/score', valid)).status, 200, 'a valid request right after succeeds');
});

test('limits: too many texts, a text too long, nothing to score are 422; an oversized body is 413', async () => {
  const b64 = PNG_1PX.toString('base64');
  assertError(await post('/v1/score', { images: [b64], texts: ['a', 'b', 'c', 'd', 'e'] }), 422, 'too_many_texts', /limit is 4/);
  assertError(await post('/v1/score', { images: [b64], texts: ['x'.repeat(21)] }), 422, 'text_too_long', /texts\[0\]/);
  assertError(await post('/v1/score', { images: [b64], texts: [] }), 422, 'nothing_to_score');
  assertError(await post('/v1/score', { images: [], texts: ['a'] }), 422, 'nothing_to_score');
  assertError(await post('/v1/score', { images: [b64, b64, b64, b64], texts: ['a'] }), 422, 'too_many_images');
  assertError(await post('/v1/rank', { image: b64, documents: [] }), 422, 'nothing_to_score');
  assertError(await post('/v1/embeddings', { input: ['a', 'b', 'c', 'd', 'e'] }), 422, 'too_many_texts');
  assertError(await post('/v1/score', { images: ['A'.repeat(70 * 1024)], texts: ['a'] }), 413, 'body_too_large');
  const big = new FormData();
  big.append('image', new Blob([new Uint8Array(70 * 1024)]), 'big.png');
  big.append('text', 'a');
  assertError(await post('/v1/score', big), 413, 'body_too_large');
  assert.equal((await post('/v1/score', valid)).status, 200);
});

test('multipart: limits, unknown fields and malformed bodies get their status; filenames label the pairs', async () => {
  const form = (texts: string[], field = 'text') => {
    const f = new FormData();
    f.append('image', new Blob([PNG_1PX], { type: 'image/png' }), 'one.png');
    for (const t of texts) f.append(field, t);
    return f;
  };
  assertError(await post('/v1/score', form(['a', 'b', 'c', 'd', 'e'])), 422, 'too_many_texts');
  assertError(await post('/v1/score', form(['y'.repeat(5000)])), 422, 'text_too_long');
  assertError(await post('/v1/score', form(['a'], 'caption')), 400, 'malformed_body', /unexpected field "caption"/);
  assertError(await post('/v1/score', form([])), 422, 'nothing_to_score');
  assertError(await post('/v1/score', new FormData()), 400, 'malformed_body', /multipart body is empty/);
  const asField = new FormData();
  asField.append('image', 'not a file');
  asField.append('text', 'a');
  assertError(await post('/v1/score', asField), 400, 'malformed_body', /file part/);
  const garbage = '--xyz\r\nContent-Disposition: form-data; name="text"\r\n\r\nabc\r\n--xyz\r\nbroken header line\r\n\r\n';
  assertError(await post('/v1/score', garbage, { ...auth, 'content-type': 'multipart/form-data; boundary=xyz' }), 400, 'malformed_body');
  assertError(await post('/v1/score', 'abc', { ...auth, 'content-type': 'multipart/form-data' }), 400, 'malformed_body');
  const ok = await post('/v1/score', form(['a', 'b']));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json.pairs.map((p: any) => [p.image, p.text]), [['one.png', 'a'], ['one.png', 'b']]);
  const rank = new FormData();
  rank.append('image', new Blob([PNG_1PX]), 'r.png');
  rank.append('documents', 'x');
  rank.append('documents', 'y');
  rank.append('top_n', 'one');
  assertError(await post('/v1/rank', rank), 400, 'malformed_body', /top_n/);
});

test('engine errors: a full queue is 503 + Retry-After, a deadline 504, a bug 500 without details', async () => {
  try {
    engine.fail = new EngineOverloadedError(2);
    const r = await post('/v1/score', valid);
    assertError(r, 503, 'overloaded');
    assert.equal(r.headers.get('retry-after'), '1');
    engine.fail = new DeadlineExceededError(60_000);
    assertError(await post('/v1/rank', { image: valid.images[0], documents: ['a'] }), 504, 'deadline_exceeded');
    engine.fail = new TypeError('secret internals');
    const bug = await post('/v1/embeddings', { input: ['a'] });
    assertError(bug, 500, 'internal_error');
    assert.doesNotMatch(bug.json.error.message, /secret/);
  } finally {
    engine.fail = undefined;
  }
  assert.equal((await post('/v1/score', valid)).status, 200);
  const deadline = engine.calls.at(-1)!.options!.deadlineMs;
  assert.equal(deadline, 60_000, 'the request deadline goes to the engine');
});

test('a client that disconnects cancels its job through the AbortSignal', async () => {
  engine.hold = true;
  const before = engine.aborted;
  try {
    await new Promise<void>((resolve) => {
      const body = JSON.stringify(valid);
      const req = httpRequest(`${base}/v1/score`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
      req.on('error', () => resolve());
      req.end(body);
      // Once the job is in the engine, hang up.
      const poll = setInterval(() => {
        if (engine.stats.queueDepth > 0) {
          clearInterval(poll);
          req.destroy();
          resolve();
        }
      }, 5);
    });
    for (let i = 0; i < 100 && engine.aborted === before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(engine.aborted, before + 1);
  } finally {
    engine.hold = false;
    engine.release();
  }
});

test('while draining for shutdown, new requests get 503 shutting_down and every response closes its connection', async () => {
  slot.draining = true;
  try {
    const r = await post('/v1/score', valid);
    assertError(r, 503, 'shutting_down');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    assert.equal(r.headers.get('connection'), 'close');
  } finally {
    slot.draining = false;
  }
  assert.equal((await post('/v1/score', valid)).status, 200);
});

test('/openapi.json documents the three job routes, JSON and multipart; /docs serves Swagger UI', async () => {
  const doc = await (await fetch(`${base}/openapi.json`)).json();
  for (const path of ['/v1/score', '/v1/rank', '/v1/embeddings']) assert.ok(doc.paths[path].post.requestBody.content['application/json'], path);
  assert.ok(doc.paths['/v1/score'].post.requestBody.content['multipart/form-data']);
  assert.ok(doc.paths['/v1/score'].post.responses['422']);
  assert.ok(doc.components.securitySchemes.bearer);
  const docs = await fetch(`${base}/docs/`);
  assert.equal(docs.status, 200);
  assert.match(await docs.text(), /swagger/i);
  const notFound = await fetch(`${base}/nope`);
  assert.equal(notFound.status, 404);
  assert.equal((await notFound.json()).error.code, 'not_found');
});

test('/metrics counts requests by route and status', async () => {
  const text = await (await fetch(`${base}/metrics`, { headers: auth })).text();
  assert.match(text, /blip_http_requests_total\{route="\/v1\/score",method="POST",status="200"\} [1-9]/);
  assert.match(text, /blip_http_requests_total\{route="\/v1\/score",method="POST",status="422"\} [1-9]/);
  assert.match(text, /blip_http_request_duration_seconds_bucket\{le="0.005",route="\/v1\/score"\}/);
  assert.match(text, /blip_engine_queue_depth 0/);
});
