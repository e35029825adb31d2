import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { FIXTURES, goldenFile, manifestEntry, maxAbsDiff, textById } from './helpers/goldens.js';

const TINY = `${FIXTURES}/models/tiny`;

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: `${FIXTURES}/__no_cache__` },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function oneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one error line, got:\n${stderr}`);
  assert.match(lines[0], /^blip-itm: /);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace without --verbose');
}

test('score --json reproduces the single-pair goldens', async () => {
  const entry = manifestEntry('model_tiny.safetensors', 'single/itm_logits');
  const image = `${FIXTURES}/${entry.images![0]}`;
  const text = textById(entry.texts![0]);
  const r = cli('score', '--model', TINY, '--image', image, '--text', text, '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.model, TINY);
  assert.equal(out.pairs.length, 1);
  const pair = out.pairs[0];
  assert.equal(pair.image, image);
  assert.equal(pair.text, text);
  const golden = await goldenFile('model_tiny.safetensors');
  assert.ok(maxAbsDiff(pair.itm_logits, (await golden('single/itm_logits')).data as Float32Array) <= 1e-4);
  assert.ok(Math.abs(pair.cosine - Number((await golden("single/cos")).data[0])) <= 1e-5);
  const [l0, l1] = pair.itm_logits;
  assert.ok(Math.abs(pair.itm_probability - 1 / (1 + Math.exp(l0 - l1))) < 1e-12);
});

test('score --json reproduces the golden pairs of the batch, image-major over all combinations', async () => {
  const entry = manifestEntry('model_tiny.safetensors', 'itm/logits');
  const golden = await goldenFile('model_tiny.safetensors');
  const logits = (await golden('itm/logits')).data as Float32Array;
  const cos = (await golden('cos/matrix')).data as Float32Array;
  // Pairs 2 and 3 share an image: one run covers both texts against it and against image 4.
  const images = [entry.images![2], entry.images![4]].map((p) => `${FIXTURES}/${p}`);
  const texts = [entry.texts![2], entry.texts![3]].map(textById);
  const r = cli('score', '--model', TINY, ...images.flatMap((i) => ['--image', i]), ...texts.flatMap((t) => ['--text', t]), '--json');
  assert.equal(r.status, 0, r.stderr);
  const { pairs } = JSON.parse(r.stdout);
  assert.deepEqual(pairs.map((p: { image: string; text: string }) => [p.image, p.text]), [
    [images[0], texts[0]], [images[0], texts[1]], [images[1], texts[0]], [images[1], texts[1]],
  ]);
  assert.ok(maxAbsDiff(pairs[0].itm_logits, logits.subarray(4, 6)) <= 1e-4);
  assert.ok(maxAbsDiff(pairs[1].itm_logits, logits.subarray(6, 8)) <= 1e-4);
  // cos/matrix rows are pair images, columns pair texts: image 2 x texts 2,3 and image 4 x texts 2,3.
  assert.ok(maxAbsDiff(pairs.map((p: { cosine: number }) => p.cosine), [cos[2 * 8 + 2], cos[2 * 8 + 3], cos[4 * 8 + 2], cos[4 * 8 + 3]]) <= 1e-5);
});

test('score prints a readable table without --json', () => {
  const r = cli('score', '--model', TINY, '--image', `${FIXTURES}/images/skimage_rocket.jpg`, '--text', 'a rocket');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0], /^image\s+text\s+match probability\s+cosine$/);
  assert.match(lines[2], /skimage_rocket\.jpg\s+a rocket\s+0\.\d{4}\s+-?0\.\d{4}$/);
});

test('tokenize --json', () => {
  const r = cli('tokenize', '--model', TINY, '--text', 'Hello, World!', '--text', '', '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    texts: [
      { text: 'Hello, World!', tokens: ['[CLS]', 'hello', ',', 'world', '!', '[SEP]'], input_ids: [101, 7592, 1010, 2088, 999, 102] },
      { text: '', tokens: ['[CLS]', '[SEP]'], input_ids: [101, 102] },
    ],
  });
});

test('usage errors exit 2 with one line', () => {
  oneLineError(cli('score', '--model', TINY, '--image', 'x.png').stderr, /give at least one --text/);
  assert.equal(cli('score', '--model', TINY, '--image', 'x.png').status, 2);
  const unknown = cli('score', '--frobnicate');
  assert.equal(unknown.status, 2);
  oneLineError(unknown.stderr, /Unknown option '--frobnicate'/);
  const cmd = cli('scroe');
  assert.equal(cmd.status, 2);
  oneLineError(cmd.stderr, /unknown command "scroe"/);
  assert.equal(cli().status, 2);
  const threads = cli('score', '--model', TINY, '--image', 'a.png', '--text', 't', '--threads', 'many');
  assert.equal(threads.status, 2);
  oneLineError(threads.stderr, /--threads must be a positive integer/);
});

test('a missing image is reported by name, exit 1', () => {
  const r = cli('score', '--model', TINY, '--image', `${FIXTURES}/images/skimage_rocket.jpg`, '--image', 'holiday/missing.jpg', '--text', 'x');
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  oneLineError(r.stderr, /holiday\/missing\.jpg: image file not found/);
});

test('an image that is not an image is reported by name, exit 1', () => {
  const r = cli('score', '--model', TINY, '--image', `${TINY}/config.json`, '--text', 'x');
  assert.equal(r.status, 1);
  oneLineError(r.stderr, /config\.json/);
});

test('a model folder that is not a checkpoint, exit 1, stack only with --verbose', () => {
  const r = cli('score', '--model', `${FIXTURES}/images`, '--image', `${FIXTURES}/images/skimage_rocket.jpg`, '--text', 'x');
  assert.equal(r.status, 1);
  oneLineError(r.stderr, /images/);
  const v = cli('score', '--model', `${FIXTURES}/images`, '--image', `${FIXTURES}/images/skimage_rocket.jpg`, '--text', 'x', '--verbose');
  assert.equal(v.status, 1);
  assert.match(v.stderr, /\n\s+at /);
});

test('--device cuda without the CUDA binaries fails with one line pointing at the README', { skip: existsSync('node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so') }, () => {
  const r = cli('score', '--model', TINY, '--image', `${FIXTURES}/images/skimage_rocket.jpg`, '--text', 'x', '--device', 'cuda');
  assert.equal(r.status, 1);
  oneLineError(r.stderr, /on cuda .*README section "GPU"/);
});

test('a caption over 512 tokens is truncated with one warning line, not an error', () => {
  const long = Array.from({ length: 600 }, () => 'word').join(' ');
  const r = cli('score', '--model', TINY, '--image', `${FIXTURES}/images/skimage_rocket.jpg`, '--text', long, '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).pairs.length, 1);
  assert.match(r.stderr.trim(), /^blip-itm: warning: 1 of 1 texts longer than the maximum of 512 tokens were truncated/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
