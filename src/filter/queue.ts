import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { BlipError, UsageError } from '../errors.js';
import type { ManifestModel } from './manifest.js';
import type { ResultOptions } from './options.js';
import type { Unit } from './plan.js';

/** What a queued unit carries: everything a worker on another machine needs, and the model it must use. */
export interface FilterJob {
  output: string;
  unit: Unit;
  options: ResultOptions;
  model: ManifestModel;
}

/** Queues planned into this Redis, by name: the output folder and model each serves. */
export const REGISTRY_KEY = 'blip-itm:filter:queues';

export interface RegistryEntry {
  queue: string;
  output: string;
  model: ManifestModel;
  plannedAt: string;
}

export interface QueueLocation {
  url: string;
  host: string;
  port: number;
  db: number;
}

/** `redis://host:port[/db]` (and `rediss://` for TLS); anything else is a usage error naming --queue. */
export function parseQueueUrl(url: string): QueueLocation {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new UsageError(`--queue must be redis://host:port[/db], got "${url}"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new UsageError(`--queue must be redis://host:port[/db], got "${url}"`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const dbText = u.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (u.hostname === '' || !Number.isInteger(db) || db < 0 || !/^\d*$/.test(dbText)) {
    throw new UsageError(`--queue must be redis://host:port[/db], got "${url}"`);
  }
  return { url, host: u.hostname, port, db };
}

/** The queue of an output folder: named from a hash of its absolute path, so every planner agrees. */
export function queueNameFor(output: string): string {
  return `blip-itm-filter-${createHash('sha256').update(resolve(output)).digest('hex').slice(0, 16)}`;
}

/**
 * A Redis connection as BullMQ needs it (no per-request retry limit), connected now so that an
 * unreachable server is one clear error instead of endless reconnect attempts.
 */
export async function connectRedis(location: QueueLocation): Promise<Redis> {
  const client = new Redis(location.url, {
    maxRetriesPerRequest: null,
    lazyConnect: true,
    connectTimeout: 5000,
    // Reconnect through short outages; give up (and fail the command) after about a minute.
    retryStrategy: (times) => (times > 60 ? null : 1000),
  });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    client.disconnect();
    throw new BlipError(`cannot reach Redis at ${location.url} (${(e as Error)?.message ?? e}); is redis-server running?`, { subject: location.url, cause: e });
  }
  return client;
}

export async function registeredQueues(client: Redis): Promise<RegistryEntry[]> {
  const all = await client.hgetall(REGISTRY_KEY);
  return Object.entries(all).map(([queue, v]) => ({ queue, ...(JSON.parse(v) as Omit<RegistryEntry, 'queue'>) })).sort((a, b) => a.output.localeCompare(b.output));
}

/** A unit's job id: fixed by the unit, so planning twice adds nothing (BullMQ ignores a known id). */
export function jobIdOf(unit: Unit): string {
  return `unit-${unit.id}`;
}

export interface EnqueueSummary {
  queue: string;
  added: number;
  retried: number;
  queued: number;
}

/**
 * Plans units into the output's queue: a unit without a job is added, one whose job failed (or
 * completed but whose part is gone) is retried, one waiting or active is left alone.
 */
export async function enqueueUnits(location: QueueLocation, request: { output: string; model: ManifestModel; options: ResultOptions; todo: Unit[] }): Promise<EnqueueSummary> {
  const name = queueNameFor(request.output);
  const client = await connectRedis(location);
  const queue = new Queue<FilterJob>(name, { connection: client });
  try {
    const entry: Omit<RegistryEntry, 'queue'> = { output: resolve(request.output), model: request.model, plannedAt: new Date().toISOString() };
    await client.hset(REGISTRY_KEY, { [name]: JSON.stringify(entry) });
    let added = 0;
    let retried = 0;
    let queued = 0;
    const fresh: { name: string; data: FilterJob; opts: { jobId: string; attempts: number; backoff: { type: 'fixed'; delay: number }; removeOnComplete: false; removeOnFail: false } }[] = [];
    for (const unit of request.todo) {
      const jobId = jobIdOf(unit);
      const job = await queue.getJob(jobId);
      if (job) {
        const state = await job.getState();
        if (state === 'failed') {
          await job.retry('failed');
          retried++;
          continue;
        }
        if (state !== 'completed') {
          queued++;
          continue;
        }
        await job.remove();
      }
      fresh.push({
        name: 'unit',
        data: { output: resolve(request.output), unit, options: request.options, model: request.model },
        opts: { jobId, attempts: 5, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: false, removeOnFail: false },
      });
    }
    if (fresh.length > 0) await queue.addBulk(fresh);
    added = fresh.length;
    return { queue: name, added, retried, queued };
  } finally {
    await queue.close();
    client.disconnect();
  }
}

export interface QueueCounts {
  waiting: number;
  active: number;
  delayed: number;
  completed: number;
  failed: number;
}

export async function queueCounts(queue: Queue): Promise<QueueCounts> {
  const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed');
  return {
    waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c['waiting-children'] ?? 0),
    active: c.active ?? 0,
    delayed: c.delayed ?? 0,
    completed: c.completed ?? 0,
    failed: c.failed ?? 0,
  };
}
