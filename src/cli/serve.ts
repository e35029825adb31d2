import { parseArgs } from 'node:util';
import { BlipError, UsageError } from '../errors.js';
import { ScoringEngine } from '../engine/scoring-engine.js';
import { DEFAULT_MAX_PIXELS } from '../preprocessing/image-decode.js';
import { checkExposure, readApiKey } from '../server/auth.js';
import { DEFAULT_LIMITS, type ServiceLimits } from '../server/limits.js';
import { startService } from '../server/service.js';
import { HELP, MODEL_OPTIONS, parseItmTextStart, runtimeOptions, usageErrors } from './args.js';
import type { Reporter } from './output.js';

export const SERVE_HELP = `Usage: blip-itm serve [options]

Serves BLIP image-text matching over HTTP: POST /v1/score, /v1/rank, /v1/embeddings, a web page
at /, GET /healthz, /readyz, /metrics, /openapi.json and /docs. One JSON log line per request
on stdout. SIGTERM or SIGINT stops it after the requests in flight.

Options:
${HELP.model}
${HELP.revision}
      --host <addr>         address to listen on (default: 127.0.0.1, this machine only)
      --port <n>            port (default: 8080; 0 picks a free one)
      --api-key-file <file> require "Authorization: Bearer <key>" (the file's first line) on /v1/* and /metrics
      --insecure-no-auth    allow a non-loopback --host without an API key
${HELP.itmTextStart}
${HELP.runtime}

Batching and cache:
      --max-batch <n>       most items per model run, across requests (default: 16)
      --max-wait-ms <ms>    how long a batch waits for more work (default: 5)
      --max-queue <n>       most jobs queued; beyond it 503 + Retry-After (default: 256)
      --cache-mb <n>        image-encoding cache, MiB; 0 disables (default: 512)

Limits per request:
      --max-body-mb <n>     body size, MiB (default: ${DEFAULT_LIMITS.bodyBytes / (1 << 20)})
      --max-pixels <n>      pixels per image (default: ${DEFAULT_MAX_PIXELS}, the decoder's)
      --max-texts <n>       texts per request (default: ${DEFAULT_LIMITS.textsPerRequest})
      --max-text-chars <n>  characters per text (default: ${DEFAULT_LIMITS.charsPerText})
      --max-images <n>      images per request (default: ${DEFAULT_LIMITS.imagesPerRequest})
      --deadline-ms <ms>    time a request may take in the engine, then 504 (default: ${DEFAULT_LIMITS.deadlineMs})
${HELP.verbose}
`;

function integer(name: string, value: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  }
  return n;
}

export async function serveCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { json: _json, ...modelOptions } = MODEL_OPTIONS;
  const { values } = usageErrors('serve', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...modelOptions,
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8080' },
    'api-key-file': { type: 'string' },
    'insecure-no-auth': { type: 'boolean', default: false },
    'itm-text-start': { type: 'string', default: 'cls' },
    'max-batch': { type: 'string' },
    'max-wait-ms': { type: 'string' },
    'max-queue': { type: 'string' },
    'cache-mb': { type: 'string', default: '512' },
    'max-body-mb': { type: 'string' },
    'max-pixels': { type: 'string' },
    'max-texts': { type: 'string' },
    'max-text-chars': { type: 'string' },
    'max-images': { type: 'string' },
    'deadline-ms': { type: 'string' },
  } }));
  if (values.help) return SERVE_HELP;
  const itmTextStart = parseItmTextStart(values['itm-text-start']);
  const runtime = runtimeOptions(values);
  const port = integer('port', values.port, 0, 65535)!;
  const host = values.host;
  if (host === '') throw new UsageError('--host must not be empty');
  const bodyMb = integer('max-body-mb', values['max-body-mb'], 1, 4096);
  const limits: Partial<ServiceLimits> = {
    ...(bodyMb !== undefined && { bodyBytes: bodyMb * (1 << 20) }),
    ...defined('imagePixels', integer('max-pixels', values['max-pixels'], 1)),
    ...defined('textsPerRequest', integer('max-texts', values['max-texts'], 1, 1_000_000)),
    ...defined('charsPerText', integer('max-text-chars', values['max-text-chars'], 1, 10_000_000)),
    ...defined('imagesPerRequest', integer('max-images', values['max-images'], 1, 10_000)),
    ...defined('deadlineMs', integer('deadline-ms', values['deadline-ms'], 1, 24 * 3600 * 1000)),
  };
  const engineOptions = {
    maxBatch: integer('max-batch', values['max-batch'], 1, 4096),
    maxWaitMs: integer('max-wait-ms', values['max-wait-ms'], 0, 60_000),
    maxQueue: integer('max-queue', values['max-queue'], 1, 1_000_000),
    cacheBytes: integer('cache-mb', values['cache-mb'], 0, 1 << 20)! * (1 << 20),
    deadlineMs: limits.deadlineMs ?? DEFAULT_LIMITS.deadlineMs,
    maxPixels: limits.imagePixels ?? DEFAULT_LIMITS.imagePixels,
    itmTextStart,
  };
  // Refuse an exposed, unauthenticated bind before anything is read or loaded.
  checkExposure(host, values['api-key-file'], values['insecure-no-auth']);
  const apiKey = values['api-key-file'] === undefined ? undefined : await readApiKey(values['api-key-file']);
  reporter.done();

  let service;
  try {
    service = await startService({
      modelName: values.model,
      host,
      port,
      limits,
      apiKey,
      logger: { level: values.verbose ? 'debug' : 'info' },
      // The model on a thread of its own: onnxruntime runs a session synchronously, and on the
      // request thread every vision run would stall /healthz, /metrics and all other requests.
      openEngine: async (events) => {
        const engine = await ScoringEngine.fromPretrained(values.model, { revision: values.revision, ...runtime, ...engineOptions, events });
        return { engine, release: () => engine.close(), checkpointDir: engine.checkpointDir };
      },
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new BlipError(`serve: ${host}:${port} is already in use (another server?); pick another --port`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') throw new BlipError(`serve: cannot listen on --host ${host} (${code})`);
    if (code === 'EACCES') throw new BlipError(`serve: not allowed to listen on ${host}:${port} (ports below 1024 need privileges)`);
    throw e;
  }
  const log = service.app.log;
  log.info({ url: service.url, model: values.model, auth: apiKey !== undefined }, `listening on ${service.url}; loading the model`);

  const stopped = new Promise<string>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        log.warn(`${signal} again: exiting without waiting`);
        process.exit(1);
      }
      log.info(`${signal}: finishing the requests in flight, then stopping`);
      void service.close().then(() => {
        log.info('stopped');
        resolve('');
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  try {
    await service.ready;
  } catch (e) {
    await service.close();
    throw e;
  }
  return stopped;
}

function defined<K extends keyof ServiceLimits>(key: K, value: ServiceLimits[K] | undefined): Partial<ServiceLimits> {
  return value === undefined ? {} : { [key]: value };
}
