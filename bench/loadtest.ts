import { existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { modelOnlyRate } from './loadtest/model-only.js';
import { startServeProcess } from './loadtest/serve-process.js';
import { delta, engineCounters, randomImages, scoreLoad, type LoadResult } from './loadtest/workload.js';

/**
 * npm run loadtest [-- --json] [--only tiny|large] [--duration S] [--per-client N]
 *
 * Load on `blip-itm serve` (a child process) with autocannon, every request POST /v1/score with one
 * image and 4 captions:
 *  - tiny fixture model: 32 clients for S seconds (default 10), distinct images, batching
 *    (--max-batch 16) against --max-batch 1;
 *  - the benchmark's random large checkpoint (npm run bench writes it): the acceptance run, 8
 *    clients each sending N (default 3) distinct images, against the model-only rate for the same
 *    jobs in this process; then the same images again (served by the cache, no vision run); then
 *    --max-batch 1.
 * Not part of npm test. Run it under `flock /tmp/blip-bench.lock` on a shared machine.
 */
const args = process.argv.slice(2);
const json = args.includes('--json');
const only = argValue('--only');
const duration = Number(argValue('--duration') ?? 10);
const perClient = Number(argValue('--per-client') ?? 3);
// Progress and figures always go to stderr; --json adds one object on stdout.
const log = (s: string) => { process.stderr.write(`${s}\n`); };

function argValue(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const fmt = (r: LoadResult) => `${r.requests} requests in ${r.seconds.toFixed(1)} s: ${r.requests_per_s.toFixed(2)} req/s, p50 ${r.p50_ms.toFixed(0)} ms, p99 ${r.p99_ms.toFixed(0)} ms, errors ${r.errors}, non-2xx ${r.non_2xx}${r.non_2xx ? ` (${Object.entries(r.statuses).filter(([c]) => !c.startsWith('2')).map(([c, n]) => `${n}x ${c}`).join(', ')})` : ''}`;

const report: Record<string, unknown> = { machine: cpus()[0]?.model, cpus: cpus().length, node: process.version };

async function withServer<T>(serveArgs: string[], fn: (url: string) => Promise<T>): Promise<T & { load_s: number }> {
  const server = await startServeProcess(serveArgs);
  try {
    return { ...(await fn(server.url)), load_s: server.readySeconds };
  } finally {
    const code = await server.stop();
    if (code !== 0) throw new Error(`serve exited with ${code} after SIGTERM`);
  }
}

if (only === undefined || only === 'tiny') {
  const model = 'test/fixtures/models/tiny';
  const images = await randomImages(256, 320, 240);
  const run = (maxBatch: number) => withServer(['--model', model, '--max-batch', String(maxBatch)], async (url) => {
    await scoreLoad(url, images.slice(0, 8), { connections: 8, amount: 32 }); // warm-up
    const before = await engineCounters(url);
    const result = await scoreLoad(url, images, { connections: 32, duration });
    const counters = delta(await engineCounters(url), before);
    return { ...result, mean_vision_batch: counters.visionImages / Math.max(1, counters.visionRuns), mean_itm_batch: counters.itmItems / Math.max(1, counters.itmRuns) };
  });
  log(`tiny model, 32 clients, ${duration} s, 1 distinct 320x240 image x 4 captions per request`);
  const batched = await run(16);
  log(`  --max-batch 16: ${fmt(batched)}; mean batch: vision ${batched.mean_vision_batch.toFixed(1)}, itm ${batched.mean_itm_batch.toFixed(1)}`);
  const single = await run(1);
  log(`  --max-batch 1:  ${fmt(single)}`);
  log(`  batching / no batching: ${(batched.requests_per_s / single.requests_per_s).toFixed(2)}x`);
  report.tiny = { batched, max_batch_1: single, ratio: batched.requests_per_s / single.requests_per_s };
}

if (only === undefined || only === 'large') {
  const model = process.env.BLIP_BENCH_DIR ?? join(tmpdir(), 'blip-itm-bench-large-coco-random');
  if (!existsSync(join(model, 'model.safetensors'))) throw new Error(`${model} has no model.safetensors; run npm run bench once to write it`);
  const clients = 8;
  const amount = clients * perClient;
  const images = await randomImages(amount + 1);
  const warm = images[amount];
  const work = images.slice(0, amount);
  log(`large random checkpoint (${model}), ${clients} clients x ${perClient} requests, 1 distinct 640x480 image x 4 captions each`);
  // The model-only rate is measured before and after the served run and averaged: on a shared
  // machine the speed drifts between minutes, and bracketing the served run cancels most of it.
  const modelOnlyBefore = await modelOnlyRate(model, work);
  log(`  model only (library, sequential), before: ${modelOnlyBefore.jobs} jobs in ${modelOnlyBefore.seconds.toFixed(1)} s = ${modelOnlyBefore.jobs_per_s.toFixed(3)} jobs/s`);
  const served = await withServer(['--model', model], async (url) => {
    await scoreLoad(url, [warm], { connections: 1, amount: 1 });
    const c0 = await engineCounters(url);
    const distinct = await scoreLoad(url, work, { connections: clients, amount });
    const c1 = await engineCounters(url);
    // The first `clients` images again: every one is in the cache.
    const repeated = await scoreLoad(url, work.slice(0, clients), { connections: clients, amount });
    const c2 = await engineCounters(url);
    return { distinct, distinct_counters: delta(c1, c0), repeated, repeated_counters: delta(c2, c1) };
  });
  const modelOnlyAfter = await modelOnlyRate(model, work);
  log(`  model only (library, sequential), after: ${modelOnlyAfter.jobs} jobs in ${modelOnlyAfter.seconds.toFixed(1)} s = ${modelOnlyAfter.jobs_per_s.toFixed(3)} jobs/s`);
  const modelOnly = { before: modelOnlyBefore, after: modelOnlyAfter, jobs_per_s: (modelOnlyBefore.jobs_per_s + modelOnlyAfter.jobs_per_s) / 2 };
  const ratio = served.distinct.requests_per_s / modelOnly.jobs_per_s;
  log(`  served, distinct images: ${fmt(served.distinct)}`);
  log(`    vision runs ${served.distinct_counters.visionRuns} for ${served.distinct_counters.visionImages} images; cache hits ${served.distinct_counters.cacheHits}, misses ${served.distinct_counters.cacheMisses}`);
  log(`    throughput / model-only (mean of before and after, ${modelOnly.jobs_per_s.toFixed(3)} jobs/s): ${ratio.toFixed(3)} (target >= 0.9)`);
  log(`  served, repeated images: ${fmt(served.repeated)}`);
  log(`    vision runs ${served.repeated_counters.visionRuns}; cache hits ${served.repeated_counters.cacheHits}, misses ${served.repeated_counters.cacheMisses}`);
  const single = await withServer(['--model', model, '--max-batch', '1'], async (url) => {
    await scoreLoad(url, [warm], { connections: 1, amount: 1 });
    return scoreLoad(url, work, { connections: clients, amount });
  });
  log(`  --max-batch 1, distinct images: ${fmt(single)}`);
  log(`  batching / no batching: ${(served.distinct.requests_per_s / single.requests_per_s).toFixed(2)}x`);
  report.large = { model_only: modelOnly, served, ratio_to_model_only: ratio, max_batch_1: single, batching_ratio: served.distinct.requests_per_s / single.requests_per_s };
}

if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
