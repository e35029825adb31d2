import { hostname } from 'node:os';
import { Queue, Worker, type Job } from 'bullmq';
import type { PairOutcome } from '../engine/types.js';
import { BlipError } from '../errors.js';
import { describeIdentity, type ModelIdentity } from '../retrieval/model-identity.js';
import type { ModelBackend } from './backend.js';
import { openDuckDb } from './duckdb.js';
import { readManifest, recordUnitDone, sameModel, unitComplete } from './manifest.js';
import { partName, type PartSummary } from './part-writer.js';
import { processUnit } from './process-unit.js';
import { UNITS_AT_ONCE } from './run-local.js';
import { connectRedis, type FilterJob, queueCounts, queueNameFor, type QueueLocation, registeredQueues, type RegistryEntry } from './queue.js';
import { cleanStaleTemps } from './temp-files.js';

/** BullMQ's default lock; a dead worker's unit goes back to the queue about this long after it died. */
export const DEFAULT_LOCK_MS = 30_000;

export interface WorkerRequest {
  location: QueueLocation;
  /** Only this output's queue; default: every queue planned into this Redis. */
  output?: string;
  /**
   * The model to score with: the worker's own (`--model`), or, when it has none, the one a job
   * names. Either way a job whose model fingerprint differs is refused.
   */
  backend: (jobModel: string) => Promise<ModelBackend>;
  /** The worker's own model, when it has one: queues planned with another are refused before any job is taken. */
  identity?: ModelIdentity;
  /** Keep waiting for new units when the queues are drained (default: exit). */
  wait: boolean;
  lockMs?: number;
  /** How often to look again when waiting for other workers' units or new queues. */
  pollMs?: number;
  onProgress?: (outcomes: PairOutcome[]) => void;
  onUnit?: (job: FilterJob, part: PartSummary) => void;
  onLog?: (line: string) => void;
  signal?: AbortSignal;
}

export interface WorkerSummary {
  units: number;
  pairs: number;
  /** Queues this worker refused to work on (another model), with why. */
  refused: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A filter worker: takes units from the queues and scores each exactly as a local run would,
 * committing its part (temp file, rename) and then the manifest. Exits when no queue it serves
 * has a unit waiting, delayed or active (another worker's active unit may still come back, if
 * that worker died: BullMQ's stalled-job check, run by the live workers every `lockMs`, returns it
 * to the queue), or keeps polling with `wait`.
 */
export async function runWorker(request: WorkerRequest): Promise<WorkerSummary> {
  const lockMs = request.lockMs ?? DEFAULT_LOCK_MS;
  const pollMs = request.pollMs ?? 500;
  const summary: WorkerSummary = { units: 0, pairs: 0, refused: [] };
  const client = await connectRedis(request.location);
  const db = await openDuckDb();
  const idleConnections = [db.connection];
  const backends = new Map<string, Promise<ModelBackend>>();
  const cleaned = new Set<string>();
  const refusedQueues = new Set<string>();

  /**
   * Jobs this process is working on, per queue, counted here rather than from the worker's
   * events: a job whose lock was lost (it stalled and went to another worker) ends with neither
   * a completed nor a failed event.
   */
  const busy = new Map<string, number>();

  async function processJob(job: Job<FilterJob>, queueName: string): Promise<PartSummary> {
    busy.set(queueName, (busy.get(queueName) ?? 0) + 1);
    try {
      return await processJobNow(job, queueName);
    } finally {
      busy.set(queueName, busy.get(queueName)! - 1);
    }
  }

  async function processJobNow(job: Job<FilterJob>, queueName: string): Promise<PartSummary> {
    const data = job.data;
    let backend = backends.get(data.model.model);
    if (!backend) {
      backend = request.backend(data.model.model);
      backends.set(data.model.model, backend);
    }
    let b: ModelBackend;
    try {
      b = await backend;
    } catch (e) {
      // A model this machine cannot load would fail every unit: leave the queue to other workers.
      refusedQueues.add(queueName);
      const why = `queue ${queueName} (${data.output}): cannot load its model ${data.model.model}: ${(e as Error)?.message ?? e}`;
      if (!summary.refused.includes(why)) summary.refused.push(why);
      throw e;
    }
    if (!sameModel(b.identity, data.model)) {
      refuse(queueName, data.output, data.model, b.identity);
      throw new BlipError(`refused by a worker with another model (${describeIdentity(b.identity)})`);
    }
    if (!cleaned.has(data.output)) {
      await cleanStaleTemps(data.output);
      cleaned.add(data.output);
    }
    // A retried unit that its first worker did commit after all is not scored again.
    const entry = (await readManifest(data.output))?.units[data.unit.id];
    if (entry && entry.state === 'done' && (await unitComplete(data.output, entry))) {
      const { part, bytes, rows, kept, errors } = entry;
      return { part, bytes, rows, kept, errors };
    }
    // A worker killed in the middle of this unit left its temp part; it goes now that the unit is redone.
    await cleanStaleTemps(data.output, partName(data.unit.id, data.options.format));
    const engine = await b.engine(data.options.itmTextStart);
    // Units in progress at the same time each need their own DuckDB connection.
    const connection = idleConnections.pop() ?? await db.connect();
    let part: PartSummary;
    try {
      part = await processUnit({
        engine, connection, output: data.output, options: data.options, signal: request.signal,
        onProgress: (o) => { summary.pairs += o.length; request.onProgress?.(o); },
      }, data.unit);
    } finally {
      idleConnections.push(connection);
    }
    await recordUnitDone(data.output, data.unit, part);
    summary.units++;
    request.onUnit?.(data, part);
    return part;
  }

  function refuse(queueName: string, output: string, model: { model: string; fingerprint: string }, own: ModelIdentity): void {
    refusedQueues.add(queueName);
    const why = `queue ${queueName} (${output}) is for model ${model.model} (${model.fingerprint.slice(-12)}); this worker has ${describeIdentity(own)}`;
    if (!summary.refused.includes(why)) summary.refused.push(why);
    request.onLog?.(`refused: ${why}`);
  }

  async function drain(queueName: string, entry?: RegistryEntry): Promise<boolean> {
    if (request.identity && entry && !sameModel(entry.model, request.identity)) {
      refuse(queueName, entry.output, entry.model, request.identity);
      return false;
    }
    const queue = new Queue(queueName, { connection: client });
    busy.set(queueName, busy.get(queueName) ?? 0);
    try {
      const initial = await queueCounts(queue);
      if (initial.waiting + initial.active + initial.delayed === 0) return false;
      const workerClient = client.duplicate();
      workerClient.on('error', () => {});
      const worker = new Worker<FilterJob, PartSummary>(queueName, (job) => processJob(job, queueName), {
        name: `${hostname()}:${process.pid}`, connection: workerClient, concurrency: UNITS_AT_ONCE, lockDuration: lockMs, stalledInterval: lockMs, maxStalledCount: 5, drainDelay: 1, autorun: true,
      });
      worker.on('failed', (job, e) => {
        request.onLog?.(`unit ${job?.data.unit.id ?? '?'} of ${job?.data.output ?? queueName} failed: ${e.message}`);
      });
      worker.on('error', (e) => request.onLog?.(`queue ${queueName}: ${e.message}`));
      try {
        for (;;) {
          await sleep(pollMs);
          if (request.signal?.aborted || refusedQueues.has(queueName)) break;
          const c = await queueCounts(queue);
          if (busy.get(queueName) === 0 && c.waiting + c.active + c.delayed === 0) break;
        }
      } finally {
        await worker.close();
        workerClient.disconnect();
      }
      return true;
    } finally {
      await queue.close();
    }
  }

  try {
    for (;;) {
      const registry = await registeredQueues(client);
      const names = request.output !== undefined ? [queueNameFor(request.output)] : registry.map((e) => e.queue);
      let worked = false;
      for (const name of names) {
        if (request.signal?.aborted) break;
        if (refusedQueues.has(name)) continue;
        if (await drain(name, registry.find((e) => e.queue === name))) worked = true;
      }
      if (request.signal?.aborted || (!request.wait && !worked)) break;
      if (!worked) await sleep(Math.max(pollMs, 2000));
    }
    return summary;
  } finally {
    for (const b of backends.values()) await (await b.catch(() => undefined))?.close();
    db.close();
    client.disconnect();
  }
}
