import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import type { RunningService } from '../src/server/service.js';
import { matchProbability } from '../src/tensor.js';
import { startTinyService } from './helpers/blip-service.js';

// The page at "/" in real Chromium (Debian's, headless), against the real service.

const CHROMIUM = '/usr/bin/chromium';
const IMAGE = 'test/fixtures/images/coco_000000039769.png';
const CAPTIONS = ['two cats laying on a pink blanket', 'a remote control on a sofa', 'a rocket launching into the sky'];
const ARTIFACTS = 'test-artifacts';
const skip = existsSync(CHROMIUM) ? false : `${CHROMIUM} not found (CI installs Debian's chromium; apt-get install chromium)`;

let service: RunningService;
let browser: Browser;
before(async () => {
  if (skip) return;
  const { chromium } = await import('playwright-core');
  [service, browser] = await Promise.all([
    startTinyService(),
    chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] }),
  ]);
});
after(async () => {
  await browser?.close();
  await service?.close();
});

test('the page scores an uploaded image against three captions and shows the API\'s probabilities', { skip }, async () => {
  const page = await browser.newPage({ viewport: { width: 1000, height: 820 } });
  const external: string[] = [];
  page.on('request', (r) => { if (!r.url().startsWith(service.url) && !r.url().startsWith('blob:')) external.push(r.url()); });
  await page.goto(`${service.url}/`);
  assert.match(await page.locator('#model-name').innerText(), /models\/tiny/);

  // Keyboard: every control is reachable with Tab, in reading order.
  const order: string[] = [];
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName || ''));
  }
  assert.deepEqual(order, ['image-input', 'captions', 'SUMMARY', 'mode-server', 'score-button']);

  await page.setInputFiles('#image-input', IMAGE);
  await page.locator('#captions').fill(CAPTIONS.join('\n'));
  await page.locator('#captions').press('Control+Enter');
  await page.locator('#result-list li').nth(2).waitFor();
  const shown = await page.locator('#result-list li').evaluateAll((items) => items.map((li) => ({
    text: li.querySelector('.caption-text')!.textContent!,
    probability: li.querySelector('.prob-value')!.textContent!,
    cosine: li.querySelector('.cos-value')!.textContent!,
  })));
  assert.match(await page.locator('#summary').innerText(), /models\/tiny · 3 captions scored in \d+ ms/);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/page-scored.png`, fullPage: true });

  // The same request through the API: the page shows its numbers, to 4 decimals, best match first.
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(readFileSync(IMAGE))], { type: 'image/png' }), 'cats.png');
  for (const c of CAPTIONS) form.append('text', c);
  const api = await (await fetch(`${service.url}/v1/score`, { method: 'POST', body: form })).json() as { pairs: Array<{ text: string; itm_logits: [number, number]; itm_probability: number; cosine: number }> };
  const expected = [...api.pairs]
    .sort((a, b) => (b.itm_logits[1] - b.itm_logits[0]) - (a.itm_logits[1] - a.itm_logits[0]))
    .map((p) => ({ text: p.text, probability: p.itm_probability.toFixed(4), cosine: p.cosine.toFixed(4) }));
  assert.deepEqual(shown, expected);
  assert.deepEqual(external, [], 'nothing loaded from elsewhere');
  await page.close();
});

test('the page says so when the file is not an image, locally or per the server', { skip }, async () => {
  const page = await browser.newPage();
  await page.goto(`${service.url}/`);
  await page.setInputFiles('#image-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  assert.match(await page.locator('#message').innerText(), /"notes.txt" is not an image/);
  // Claims to be a PNG; the server's decoder finds out.
  await page.setInputFiles('#image-input', { name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('not really a png') });
  await page.locator('#captions').fill('a caption');
  await page.locator('#score-button').click();
  await page.locator('#message:not([hidden])').waitFor();
  assert.match(await page.locator('#message').innerText(), /Not an image the server can read: fake\.png: not a readable image/);
  await page.screenshot({ path: `${ARTIFACTS}/page-not-an-image.png` });
  // No captions: said before anything is sent.
  await page.setInputFiles('#image-input', IMAGE);
  await page.locator('#captions').fill('  \n ');
  await page.locator('#score-button').click();
  assert.match(await page.locator('#message').innerText(), /at least one caption/);
  await page.close();
});

// "Run in this browser": the page loads blip-itm/web from /web/ and the checkpoint from /model/,
// and scores in the page. The server's own request log must show no /v1 call meanwhile.
describe('the page\'s browser mode', { skip }, () => {
  const log: Array<{ path: string; status: number }> = [];
  let local: RunningService;
  before(async () => {
    execFileSync(process.execPath, ['scripts/build-web.mjs'], { stdio: 'pipe' });
    local = await startTinyService({
      logger: { level: 'info', stream: { write: (line: string) => { const j = JSON.parse(line) as { msg?: string; path?: string; status?: number }; if (j.msg === 'request') log.push({ path: j.path!, status: j.status! }); } } },
    });
  });
  after(() => local?.close());

  test('scores in the page, with the API\'s numbers (fp32 within the web tolerances, int8 within its bounds), and sends nothing to /v1', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    try {
      await page.goto(`${local.url}/`);
      assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'cross-origin isolated, so WASM gets threads');
      await page.locator('#mode-browser').check();
      assert.equal(await page.locator('#browser-options').isVisible(), true);
      await page.locator('#browser-dtype').selectOption('fp32');
      await page.setInputFiles('#image-input', IMAGE);
      await page.locator('#captions').fill(CAPTIONS.join('\n'));
      const mark = log.length;
      const score = async () => {
        await page.locator('#score-button').click();
        await page.locator('#summary', { hasText: 'in this browser' }).waitFor({ timeout: 120_000 });
        return page.locator('#result-list li').evaluateAll((items) => items.map((li) => ({
          text: li.querySelector('.caption-text')!.textContent!,
          logits: JSON.parse((li as HTMLElement).dataset.itmLogits!) as [number, number],
          cosine: Number((li as HTMLElement).dataset.cosine),
        })));
      };
      const fp32 = await score();
      assert.match(await page.locator('#summary').innerText(), /models\/tiny · 3 captions scored in \d+ ms in this browser \(wasm, fp32\)/);
      await page.screenshot({ path: `${ARTIFACTS}/page-browser-mode.png`, fullPage: true });
      await page.locator('#browser-dtype').selectOption('auto');
      await page.locator('#summary').evaluate((el) => { el.textContent = ''; });
      const int8 = await score();
      assert.match(await page.locator('#summary').innerText(), /in this browser \(wasm, int8\)/);
      const during = log.slice(mark);
      assert.deepEqual(during.filter((r) => r.path.startsWith('/v1/')), [], 'no /v1 request while scoring in the browser');
      assert.ok(during.some((r) => /^\/model\/[0-9a-f]{16}\/model\.safetensors$/.test(r.path) && r.status === 200), 'weights fetched from /model/');
      assert.ok(during.some((r) => r.path === '/web/blip-itm.web.js' && r.status === 200), 'bundle fetched from /web/');

      const form = new FormData();
      form.append('image', new Blob([new Uint8Array(readFileSync(IMAGE))], { type: 'image/png' }), 'cats.png');
      for (const c of CAPTIONS) form.append('text', c);
      const api = await (await fetch(`${local.url}/v1/score`, { method: 'POST', body: form })).json() as { pairs: Array<{ text: string; itm_logits: [number, number]; itm_probability: number; cosine: number }> };
      const byText = new Map(api.pairs.map((p) => [p.text, p]));
      assert.deepEqual(fp32.map((r) => r.text).sort(), [...CAPTIONS].sort());
      for (const r of fp32) {
        const p = byText.get(r.text)!;
        assert.ok(Math.max(...r.logits.map((l, i) => Math.abs(l - p.itm_logits[i]))) <= 1e-4, `${r.text}: ITM logits ${r.logits} vs API ${p.itm_logits}`);
        assert.ok(Math.abs(r.cosine - p.cosine) <= 1e-5, `${r.text}: cosine ${r.cosine} vs API ${p.cosine}`);
      }
      // int8 against the API's fp32: the int8 bounds of test/precision.test.ts.
      for (const r of int8) {
        const p = byText.get(r.text)!;
        assert.ok(Math.abs(matchProbability(r.logits[0], r.logits[1]) - p.itm_probability) <= 0.022, `${r.text}: int8 probability vs API`);
        assert.ok(Math.abs(r.cosine - p.cosine) <= 0.045, `${r.text}: int8 cosine vs API`);
      }
    } finally {
      await page.close();
    }
  });

  test('the model files are behind the API key; the bundle is not; only the checkpoint\'s own files are offered', async () => {
    const keyed = await startTinyService({ apiKey: 'k'.repeat(24) });
    try {
      const auth = { authorization: `Bearer ${'k'.repeat(24)}` };
      assert.equal((await fetch(`${keyed.url}/model/manifest.json`)).status, 401);
      // The router decodes percent-escapes before matching; the key check must not be fooled by them.
      assert.equal((await fetch(`${keyed.url}/%6Dodel/manifest.json`)).status, 401);
      assert.equal((await fetch(`${keyed.url}/%6Detrics`)).status, 401);
      assert.equal((await fetch(`${keyed.url}/%761/score`, { method: 'POST', body: new FormData() })).status, 401);
      assert.equal((await fetch(`${keyed.url}/web/blip-itm.web.js`)).status, 200);
      const manifest = await (await fetch(`${keyed.url}/model/manifest.json`, { headers: auth })).json() as { base: string; files: string[]; model: string };
      assert.match(manifest.base, /^\/model\/[0-9a-f]{16}\/$/);
      assert.ok(manifest.files.includes('model.safetensors') && manifest.files.includes('config.json'));
      assert.equal((await fetch(`${keyed.url}${manifest.base}config.json`)).status, 401);
      const config = await fetch(`${keyed.url}${manifest.base}config.json`, { headers: auth });
      assert.equal(config.status, 200);
      assert.deepEqual(await config.json(), JSON.parse(readFileSync('test/fixtures/models/tiny/config.json', 'utf8')));
      for (const path of [`${manifest.base}..%2Fconfig.json`, `${manifest.base}pytorch_model.bin`, '/model/0000000000000000/config.json', '/web/..%2Findex.js']) {
        const res = await fetch(`${keyed.url}${path}`, { headers: auth });
        assert.equal(res.status, 404, path);
        assert.match(((await res.json()) as { error: { message: string } }).error.message, /./);
      }
    } finally {
      await keyed.close();
    }
  });
});
