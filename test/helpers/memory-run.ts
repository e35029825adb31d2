import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Finished, sleep, spawnCli } from './filter-cli.js';

const PROBE = fileURLToPath(new URL('./memory-probe.mjs', import.meta.url));

/** What memory-probe.mjs answers, in MiB, after a full garbage collection. */
export interface MemorySample {
  /** Resident set (VmRSS). */
  rss: number;
  /** Peak resident set so far (VmHWM). */
  hwm: number;
  /** The live V8 heap plus the memory V8 tracks outside it (Buffers, ArrayBuffers). */
  js: number;
  /** Threads of the process. */
  threads: number;
}

export function readStatusMb(status: string, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  if (!m) throw new Error(`/proc status has no ${field}`);
  return Number(m[1]) / 1024;
}

export interface UnitSample extends MemorySample {
  /** Units complete (in the manifest) when the sample was asked for. */
  units: number;
}

export interface MeasuredRun {
  finished: Finished;
  /** One sample per observed unit completion, before the last unit. */
  samples: UnitSample[];
  /** VmHWM (MiB) last read before the process exited: its peak over the whole run. */
  peak: number;
}

function unitsDone(output: string): number {
  try {
    return readFileSync(join(output, 'manifest.json'), 'utf8').match(/"state": "done"/g)?.length ?? 0;
  } catch {
    return 0;
  }
}

/**
 * Runs `blip-itm filter` with the memory probe preloaded and asks it for a sample (after a full GC)
 * each time the manifest shows another unit complete. No sample is asked for once `totalUnits - 1`
 * are done: the process may be exiting, and a message then could race its teardown.
 */
export async function measureFilterRun(args: string[], output: string, totalUnits: number): Promise<MeasuredRun> {
  const run = spawnCli(args, { nodeArgs: ['--expose-gc', '--import', PROBE], ipc: true });
  const child = run.child;
  let exited = false;
  void run.done.then(() => { exited = true; });
  const samples: UnitSample[] = [];
  let waiting: ((s: MemorySample | undefined) => void) | undefined;
  child.on('message', (m) => waiting?.(m as MemorySample));
  let peak = 0;
  let asked = 0;
  while (!exited) {
    try {
      peak = readStatusMb(readFileSync(`/proc/${child.pid}/status`, 'utf8'), 'VmHWM');
    } catch {
      // Gone between the check and the read.
    }
    const units = unitsDone(output);
    if (units > asked && units < totalUnits && child.connected) {
      asked = units;
      const reply = new Promise<MemorySample | undefined>((resolve) => {
        waiting = resolve;
        void run.done.then(() => resolve(undefined));
      });
      child.send('sample', (e) => { if (e) waiting?.(undefined); });
      const sample = await reply;
      waiting = undefined;
      if (sample) samples.push({ units, ...sample });
      continue;
    }
    await sleep(25);
  }
  return { finished: await run.done, samples, peak };
}
