import { readFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { ScoringEngine } from '../src/engine/scoring-engine.js';
import type { EngineOptions, PairScore } from '../src/engine/types.js';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';

/**
 * The scoring engine against direct model calls on the same work, in the same process and run
 * (issue #10's benchmark):
 *
 *   flock /tmp/blip-bench.lock node --import tsx bench/engine.ts [--jobs N] [--callers C] [--json]
 *
 * Each job is 1 image (a distinct 640x480 JPEG) x 4 captions, scored as `blip-itm score` does.
 * Phases: model-only (jobs one after another through the model's methods), the engine over that
 * model with C concurrent callers on the same jobs, model-only again (the VM drifts; the ratios
 * use the mean of both), then ScoringEngine.fromPretrained (the model on its own thread, as the
 * service runs it) on the same jobs, and on jobs repeating 2 distinct images (the cache must
 * serve them without re-encoding). Every engine number is checked against the model-only one. Uses the random large checkpoint of `npm run bench`
 * ($TMPDIR/blip-itm-bench-large-coco-random, BLIP_BENCH_DIR overrides; write it with npm run bench).
 */

export interface EngineBenchOptions {
  /** Checkpoint folder. */
  dir: string;
  jobs?: number;
  callers?: number;
  engine?: EngineOptions;
  log?: (line: string) => void;
}

export interface EnginePhase {
  jobs: number;
  seconds: number;
  jobs_per_s: number;
  p50_ms: number;
  p99_ms: number;
  errors: number;
  vision_runs: number;
  /** Longest event-loop stall while the phase ran (engine phases only). */
  event_loop_max_ms?: number;
}

export interface EngineBenchResult {
  machine: string;
  callers: number;
  model_only: EnginePhase;
  model_only_again: EnginePhase;
  /** new ScoringEngine(model): the model on the callers' thread. */
  engine_in_process: EnginePhase;
  /** ScoringEngine.fromPretrained: the model on its own thread (what the service uses). */
  engine: EnginePhase;
  engine_repeated_images: EnginePhase & { cache_hits: number; cache_misses: number };
  /** Engine jobs/s over the mean of the two model-only rates. */
  throughput_ratio_in_process: number;
  throughput_ratio: number;
  /** Largest difference between the engine's and the model's numbers for the same pairs. */
  max_abs_diff: number;
  /** Batch sizes per stage in the in-process engine phase. */
  batch_sizes_in_process: Record<string, { batches: number; mean: number; max: number }>;
}

interface Job {
  image: Uint8Array;
  texts: string[];
}

const WORDS = ['a', 'dog', 'cat', 'runs', 'on', 'the', 'beach', 'near', 'two', 'red', 'boats', 'under', 'blue', 'sky', 'with', 'people'];

/** `n` jobs over `distinctImages` images; `seed` makes image sets that share no image. */
async function makeJobs(n: number, distinctImages: number, seed: number): Promise<Job[]> {
  const base = sharp(readFileSync('test/fixtures/images/coco_000000039769.png')).resize(640, 480);
  const images = await Promise.all(Array.from({ length: distinctImages }, (_, i) =>
    base.clone().modulate({ hue: (seed + i * 37) % 360, brightness: 0.8 + (i % 5) * 0.1 }).jpeg({ quality: 90 - seed % 7 }).toBuffer()));
  return Array.from({ length: n }, (_, j) => ({
    image: images[j % distinctImages],
    texts: Array.from({ length: 4 }, (_, t) => Array.from({ length: 12 }, (_, w) => WORDS[(j * 7 + t * 3 + w * 5) % WORDS.length]).join(' ')),
  }));
}

/** `blip-itm score`'s path for one job: logits and cosine per caption. */
async function modelJob(model: BlipForImageTextRetrieval, job: Job): Promise<Array<{ logits: [number, number]; cosine: number }>> {
  const enc = await model.encodeImages(await model.processor.preprocessImages([job.image]));
  const tokens = model.processor.tokenize(job.texts, { padding: 'longest' });
  const cos = model.cosine(enc, await model.encodeTexts(tokens)).data;
  const l = (await model.itmForImage(enc, 0, tokens)).data;
  return job.texts.map((_, t) => ({ logits: [l[2 * t], l[2 * t + 1]], cosine: cos[t] }));
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

async function phase(
  visionRuns: () => number,
  jobs: Job[],
  callers: number,
  run: (job: Job, index: number) => Promise<unknown>,
  watchLoop: boolean,
): Promise<EnginePhase> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const runs = visionRuns();
  const loop = watchLoop ? monitorEventLoopDelay({ resolution: 5 }) : undefined;
  loop?.enable();
  const started = performance.now();
  await Promise.all(Array.from({ length: callers }, async () => {
    while (next < jobs.length) {
      const i = next++;
      const t0 = performance.now();
      try {
        await run(jobs[i], i);
      } catch {
        errors++;
      }
      latencies.push(performance.now() - t0);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  loop?.disable();
  return {
    jobs: jobs.length, seconds, jobs_per_s: jobs.length / seconds,
    p50_ms: percentile(latencies, 50), p99_ms: percentile(latencies, 99), errors,
    vision_runs: visionRuns() - runs,
    ...(loop ? { event_loop_max_ms: loop.max / 1e6 } : {}),
  };
}

type Direct = Array<Array<{ logits: [number, number]; cosine: number }>>;

/** Runs the jobs through `engine` from `callers` callers, checking every number against `direct`. */
async function enginePhase(engine: ScoringEngine, jobs: Job[], callers: number, direct: Direct | undefined): Promise<EnginePhase & { max_abs_diff: number }> {
  let maxDiff = 0;
  const result = await phase(() => engine.stats.visionRuns ?? 0, jobs, callers, async (job, i) => {
    const { pairs } = await engine.score({ images: [{ bytes: job.image }], texts: job.texts });
    if (!direct) return;
    pairs.forEach((p: PairScore) => {
      const d = direct[i][p.text];
      maxDiff = Math.max(maxDiff, Math.abs(p.itmLogits[0] - d.logits[0]), Math.abs(p.itmLogits[1] - d.logits[1]), Math.abs(p.cosine - d.cosine));
    });
  }, true);
  return { ...result, max_abs_diff: maxDiff };
}

function batchSummary(batches: Record<string, number[]>): Record<string, { batches: number; mean: number; max: number }> {
  return Object.fromEntries(Object.entries(batches).map(([stage, sizes]) => [stage, {
    batches: sizes.length, mean: sizes.reduce((a, b) => a + b, 0) / sizes.length, max: Math.max(...sizes),
  }]));
}

export async function benchEngine(options: EngineBenchOptions): Promise<EngineBenchResult> {
  const log = options.log ?? (() => undefined);
  const n = options.jobs ?? 8;
  const callers = options.callers ?? 8;
  const jobs = await makeJobs(n, n, 0);
  const repeated = await makeJobs(n, 2, 1);
  const warm = await makeJobs(2, 2, 2);
  const batches: Record<string, number[]> = {};
  let counting = false;
  const events = { batch: (stage: string, size: number) => { if (counting) (batches[stage] ??= []).push(size); } };
  const say = (name: string, p: EnginePhase) => log(`  ${name}: ${p.jobs_per_s.toFixed(3)} jobs/s, p50 ${p.p50_ms.toFixed(0)} ms, p99 ${p.p99_ms.toFixed(0)} ms, ${p.vision_runs} vision runs${p.event_loop_max_ms === undefined ? '' : `, event loop max ${p.event_loop_max_ms.toFixed(0)} ms`}`);

  log(`loading ${options.dir} on this thread ...`);
  const model = await BlipForImageTextRetrieval.fromPretrained(options.dir);
  const direct: Direct = [];
  let modelOnly: EnginePhase;
  let modelAgain: EnginePhase;
  let inProcess: EnginePhase & { max_abs_diff: number };
  try {
    // Warmed up (sessions run once, worker threads started) like a running service.
    const engine = new ScoringEngine(model, { ...options.engine, events });
    await modelJob(model, warm[0]);
    await engine.score({ images: [{ bytes: warm[1].image }], texts: warm[1].texts });

    log(`model-only: ${n} jobs of 1 image x 4 captions, one after another ...`);
    modelOnly = await phase(() => model.visionRuns, jobs, 1, async (job, i) => (direct[i] = await modelJob(model, job)), false);
    say('model-only', modelOnly);
    log(`engine, model on this thread: the same jobs from ${callers} concurrent callers ...`);
    counting = true;
    inProcess = await enginePhase(engine, jobs, callers, direct);
    counting = false;
    say('engine (in-process)', inProcess);
    await engine.close();
    log('model-only again ...');
    modelAgain = await phase(() => model.visionRuns, jobs, 1, (job) => modelJob(model, job), false);
    say('model-only', modelAgain);
  } finally {
    await model.dispose();
  }

  log('loading the model on its own thread (ScoringEngine.fromPretrained) ...');
  const hosted = await ScoringEngine.fromPretrained(options.dir, options.engine);
  try {
    await hosted.score({ images: [{ bytes: warm[0].image }], texts: warm[0].texts });
    log(`engine, model on its own thread: the same jobs from ${callers} concurrent callers ...`);
    const onThread = await enginePhase(hosted, jobs, callers, direct);
    say('engine (fromPretrained)', onThread);
    log(`engine, ${n} jobs over 2 distinct images ...`);
    const before = hosted.stats;
    const rep = await enginePhase(hosted, repeated, callers, undefined);
    const cacheHits = hosted.stats.cacheHits - before.cacheHits;
    const cacheMisses = hosted.stats.cacheMisses - before.cacheMisses;
    say('engine, repeated images', rep);

    const meanModel = (modelOnly.jobs_per_s + modelAgain.jobs_per_s) / 2;
    return {
      machine: `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} CPUs)`,
      callers,
      model_only: modelOnly,
      model_only_again: modelAgain,
      engine_in_process: inProcess,
      engine: onThread,
      engine_repeated_images: { ...rep, cache_hits: cacheHits, cache_misses: cacheMisses },
      throughput_ratio_in_process: inProcess.jobs_per_s / meanModel,
      throughput_ratio: onThread.jobs_per_s / meanModel,
      max_abs_diff: Math.max(inProcess.max_abs_diff, onThread.max_abs_diff),
      batch_sizes_in_process: batchSummary(batches),
    };
  } finally {
    await hosted.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const value = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const json = args.includes('--json');
  const result = await benchEngine({
    dir: process.env.BLIP_BENCH_DIR ?? join(tmpdir(), 'blip-itm-bench-large-coco-random'),
    jobs: value('--jobs') ? Number(value('--jobs')) : undefined,
    callers: value('--callers') ? Number(value('--callers')) : undefined,
    engine: value('--max-batch') ? { maxBatch: Number(value('--max-batch')) } : undefined,
    log: json ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, json ? undefined : 2)}\n`);
}
