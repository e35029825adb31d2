import { Queue } from 'bullmq';
import { type Manifest, readManifest } from './manifest.js';
import { connectRedis, queueCounts, type QueueCounts, queueNameFor, type QueueLocation, registeredQueues, type RegistryEntry } from './queue.js';

export interface QueueStatus {
  queue: string;
  output: string;
  model: string;
  counts: QueueCounts;
  /** The manifest's totals, when the output folder is readable from here. */
  totals: Manifest['totals'] | null;
}

/** Progress of every queue planned into this Redis (or of one output's). */
export async function filterStatus(location: QueueLocation, output?: string): Promise<QueueStatus[]> {
  const client = await connectRedis(location);
  try {
    let entries: RegistryEntry[] = await registeredQueues(client);
    if (output !== undefined) entries = entries.filter((e) => e.queue === queueNameFor(output));
    const out: QueueStatus[] = [];
    for (const e of entries) {
      const queue = new Queue(e.queue, { connection: client });
      try {
        const counts = await queueCounts(queue);
        const manifest = await readManifest(e.output).catch(() => undefined);
        out.push({ queue: e.queue, output: e.output, model: e.model.model, counts, totals: manifest?.totals ?? null });
      } finally {
        await queue.close();
      }
    }
    return out;
  } finally {
    client.disconnect();
  }
}

export function formatStatus(s: QueueStatus): string {
  const c = s.counts;
  const lines = [`${s.output} (queue ${s.queue}, model ${s.model})`];
  lines.push(`  units: ${c.completed} completed, ${c.active} active, ${c.waiting} waiting, ${c.delayed} delayed, ${c.failed} failed`);
  if (s.totals) {
    const t = s.totals;
    const pct = t.rows > 0 ? ` (${((100 * t.kept) / t.rows).toFixed(1)}%)` : '';
    lines.push(`  manifest: ${t.unitsDone}/${t.units} units done, ${t.rows} rows, ${t.kept} kept${pct}, ${t.errors} errors`);
  }
  return lines.join('\n');
}
