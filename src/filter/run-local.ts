import type { Engine } from '../engine/types.js';
import { openDuckDb } from './duckdb.js';
import type { InputFile } from './inputs.js';
import { type Manifest, type ManifestModel, readManifest, recordUnitDone } from './manifest.js';
import type { ResultOptions } from './options.js';
import { openOutput } from './output-folder.js';
import type { PartSummary } from './part-writer.js';
import type { Unit } from './plan.js';
import { processUnit } from './process-unit.js';
import { FilterProgress } from './progress.js';

/** Units scored at the same time by one process. */
export const UNITS_AT_ONCE = 2;

export interface LocalRunRequest {
  output: string;
  inputs: InputFile[];
  options: ResultOptions;
  model: ManifestModel;
  overwrite: boolean;
  /** Asked for only when there is work to do (a finished output is never re-scored); the caller closes it. */
  engine: () => Promise<Engine>;
  /** Redrawn as pairs finish. */
  onProgress?: (progress: FilterProgress) => void;
  /** Called as each unit is committed. */
  onUnit?: (unit: Unit, part: PartSummary) => void;
  signal?: AbortSignal;
}

export interface FilterSummary {
  output: string;
  manifest: Manifest;
  /** Units scored by this run. */
  unitsRun: number;
  /** Units already complete (skipped). */
  unitsSkipped: number;
  /** Pairs scored by this run. */
  pairsRun: number;
  seconds: number;
  resumed: boolean;
}

/**
 * Filters in this process: plans (or resumes) the output, then scores the units that are not
 * complete, two at a time, each committed on its own (part renamed into place, then the manifest),
 * so a crash at any point loses at most the units in progress.
 */
export async function runLocal(request: LocalRunRequest): Promise<FilterSummary> {
  const db = await openDuckDb();
  let engine: Engine | undefined;
  try {
    const opened = await openOutput(db.connection, request.output, request);
    const total = opened.todo.every((u) => u.kind === 'rows') ? opened.todo.reduce((n, u) => n + (u.kind === 'rows' ? u.count : 0), 0) : null;
    const progress = new FilterProgress(request.options, total);
    if (opened.todo.length > 0) engine = await request.engine();
    const queue = [...opened.todo];
    const lane = async () => {
      const connection = await db.connect();
      for (let unit = queue.shift(); unit; unit = queue.shift()) {
        const ctx = {
          engine: engine!, connection, output: request.output, options: request.options, signal: request.signal,
          onProgress: (o: Parameters<FilterProgress['add']>[0]) => { progress.add(o); request.onProgress?.(progress); },
        };
        const part = await processUnit(ctx, unit);
        await recordUnitDone(request.output, unit, part);
        request.onUnit?.(unit, part);
      }
    };
    // Two units at once, so the engine stays fed while one unit's last pairs finish and its part is written.
    const lanes = await Promise.allSettled(Array.from({ length: Math.min(UNITS_AT_ONCE, queue.length) }, lane));
    const failed = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (failed) throw failed.reason;
    const manifest = (await readManifest(request.output)) ?? opened.manifest;
    return {
      output: request.output, manifest, unitsRun: opened.todo.length, unitsSkipped: Object.keys(manifest.units).length - opened.todo.length,
      pairsRun: progress.counts.pairs, seconds: progress.seconds, resumed: opened.resumed,
    };
  } finally {
    db.close();
  }
}
