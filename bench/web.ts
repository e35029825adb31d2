/**
 * The large random checkpoint in headless Chromium (onnxruntime-web, WASM, int8, threads) against
 * onnxruntime-node int8 and fp32 in the same run: load time, seconds per image (ITM, one caption),
 * peak memory.
 *
 *   flock /tmp/blip-heavy.lock node --import tsx bench/web.ts [checkpoint-dir] [images]
 *
 * Without a folder, the random-weight checkpoint of blip-itm-large-coco's layout is written once
 * (bench/random-checkpoint.ts). Peak memory: browser = the largest sum of RSS over Chromium's
 * processes, sampled every 200 ms (shared pages counted once per process, so an upper bound);
 * Node = peak RSS (VmHWM) of a child process that does nothing but its own load and runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { StaticServer } from '../test/helpers/static-server.js';
import { peakRssMb } from './peak-rss.js';
import { benchCheckpoint } from './random-checkpoint.js';

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

async function browserRun(dir: string, count: number): Promise<Record<string, unknown>> {
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
      const out: Record<string, unknown> = { isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency };
      for (const visit of ['first', 'second']) {
        const t0 = performance.now();
        let model;
        try {
          model = await web.BlipForImageTextRetrieval.fromPretrained('/model/', { device: 'wasm', dtype: 'int8' });
        } catch (e) {
          out[`${visit}_error`] = String(e);
          return out;
        }
        out[`${visit}_load_s`] = (performance.now() - t0) / 1000;
        out.dtype = model.dtype;
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

/** One dtype on onnxruntime-node, in this (child) process. int8 loads twice: converting, then from its weights cache. */
async function nodeRun(dir: string, count: number, dtype: 'fp32' | 'int8'): Promise<Record<string, unknown>> {
  const cacheDir = mkdtempSync(join(tmpdir(), 'blip-web-bench-node-'));
  try {
    const out: Record<string, unknown> = { dtype };
    for (const visit of dtype === 'int8' ? ['first', 'second'] : ['first']) {
      const t0 = performance.now();
      const model = await BlipForImageTextRetrieval.fromPretrained(dir, { dtype, weightsCacheDir: cacheDir });
      out[`${visit}_load_s`] = (performance.now() - t0) / 1000;
      if (visit === 'first') {
        const times: number[] = [];
        for (let i = 0; i < count; i++) {
          const t = performance.now();
          await model.forward(await model.processor.call({ images: [image], text: [caption] }));
          times.push((performance.now() - t) / 1000);
        }
        out.s_per_image = times;
      }
      await model.dispose();
    }
    return { ...out, peak_rss_gb: peakRssMb() / 1024 };
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--node-child') {
  const [, , , dir, count, dtype] = process.argv;
  console.log(JSON.stringify(await nodeRun(dir, Number(count), dtype as 'fp32' | 'int8')));
} else {
  const dir = process.argv[2] ? resolve(process.argv[2]) : await benchCheckpoint();
  const count = Number(process.argv[3] ?? 3);
  const results: Record<string, Record<string, unknown>> = {};
  results['chromium wasm int8'] = await browserRun(dir, count);
  console.log('chromium wasm int8:', JSON.stringify(results['chromium wasm int8']));
  for (const dtype of ['int8', 'fp32'] as const) {
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--node-child', dir, String(count), dtype], { encoding: 'utf8' });
    results[`onnxruntime-node ${dtype}`] = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    console.log(`onnxruntime-node ${dtype}:`, JSON.stringify(results[`onnxruntime-node ${dtype}`]));
  }
  const base = results['onnxruntime-node int8'].s_per_image as number[];
  for (const [name, r] of Object.entries(results)) {
    if (!Array.isArray(r.s_per_image)) continue;
    const m = median(r.s_per_image as number[]);
    console.log(`${name}: median ${m.toFixed(2)} s/image (${(m / median(base)).toFixed(2)}x node int8), load ${Number(r.first_load_s).toFixed(1)} s`
      + `${r.second_load_s !== undefined ? ` / again ${Number(r.second_load_s).toFixed(1)} s` : ''}, peak ${Number(r.peak_rss_gb).toFixed(2)} GiB`);
  }
}
