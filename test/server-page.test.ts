import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import type { RunningService } from '../src/server/service.js';
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
  for (let i = 0; i < 4; i++) {
    await page.keyboard.press('Tab');
    order.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName || ''));
  }
  assert.deepEqual(order, ['image-input', 'captions', 'SUMMARY', 'score-button']);

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
