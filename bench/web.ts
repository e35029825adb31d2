/**
 * The large random checkpoint in headless Chromium (onnxruntime-web, WASM, threads) against
 * onnxruntime-node in the same run: load time, seconds per image (ITM, one caption), peak memory.
 *
 *   flock /tmp/blip-bench.lock node --import tsx bench/web.ts [checkpoint-dir] [images]
 *
 * Peak memory: browser = the largest sum of RSS over Chromium's processes, sampled every 200 ms;
 * Node = this process's peak RSS (process.resourceUsage().maxRSS) around its own load and runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { StaticServer } from '../test/helpers/static-server.js';

const dir = resolve(process.argv[2] ?? '/tmp/blip-itm-bench-large-coco-random');
const count = Number(process.argv[3] ?? 3);
const image = 'test/fixtures/images/coco_000000039769.png';
const caption = 'two cats lying on a pink blanket next to remote controls';
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function chromiumRss(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chromium') || !cmd.includes('headless')) continue;
      const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
      total += Number(kb ?? 0) * 1024;
    } catch { /* process ended */ }
  }
  return total;
}

async function browserRun(): Promise<Record<string, unknown>> {
  execFileSync(process.execPath, ['scripts/build-web.mjs'], { stdio: 'inherit' });
  const server = new StaticServer(resolve('.'));
  server.mount('/model/', dir);
  server.route('/', 'text/html', '<!doctype html><title>bench</title>');
  await server.start();
  // A persistent profile, as a user's browser has: an ephemeral context's Cache Storage quota is
  // too small for a 1.7 GB checkpoint (QuotaExceededError).
  const profile = mkdtempSync(join(tmpdir(), 'blip-web-bench-'));
  const browser = await chromium.launchPersistentContext(profile, { executablePath: '/usr/bin/chromium', args: ['--enable-unsafe-webgpu'] });
  let peak = 0;
  const timer = setInterval(() => { peak = Math.max(peak, chromiumRss()); }, 200);
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.log('  page:', m.text()));
    await page.goto(`${server.origin}/`);
    const r = await page.evaluate(async ([img, text, n]) => {
      const web = await import('/dist/web/blip-itm.web.js' as string);
      const out: Record<string, unknown> = { isolated: crossOriginIsolated, threads: navigator.hardwareConcurrency };
      for (const visit of ['first', 'second']) {
        const t0 = performance.now();
        let model;
        try {
          model = await web.BlipForImageTextRetrieval.fromPretrained('/model/', { device: 'wasm' });
        } catch (e) {
          out[`${visit}_error`] = String(e);
          return out;
        }
        out[`${visit}_load_s`] = (performance.now() - t0) / 1000;
        if (visit === 'first') {
          const times: number[] = [];
          for (let i = 0; i < n; i++) {
            const t = performance.now();
            const inputs = await model.processor.call({ images: [img], text: [text] });
            await model.forward(inputs);
            times.push((performance.now() - t) / 1000);
          }
          out.s_per_image = times;
        }
        await model.dispose();
      }
      return out;
    }, [`/${image}`, caption, count] as const);
    return { ...r, peak_rss_gb: peak / 2 ** 30 };
  } finally {
    clearInterval(timer);
    await browser.close();
    await server.stop();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function nodeRun(): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const model = await BlipForImageTextRetrieval.fromPretrained(dir);
  const load = (performance.now() - t0) / 1000;
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await model.forward(await model.processor.call({ images: [image], text: [caption] }));
    times.push((performance.now() - t) / 1000);
  }
  await model.dispose();
  return { load_s: load, s_per_image: times, peak_rss_gb: (process.resourceUsage().maxRSS * 1024) / 2 ** 30 };
}

const web = await browserRun();
console.log('chromium wasm:', JSON.stringify(web));
const node = await nodeRun();
console.log('onnxruntime-node cpu:', JSON.stringify(node));
if (Array.isArray(web.s_per_image)) {
  const w = median(web.s_per_image as number[]);
  const n = median(node.s_per_image as number[]);
  console.log(`median s/image: chromium wasm ${w.toFixed(2)}, node ${n.toFixed(2)}, ratio ${(w / n).toFixed(2)}x`);
}
