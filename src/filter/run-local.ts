import type { Engine } from '../engine/types.js';
import { openDuckDb } from './duckdb.js';
import type { InputFile } from './inputs.js';
import { type Manifest, type ManifestModel, readManifest, recordUnitDone } from './manifest.js';
import type { ResultOptions } from './options.js';
import { openOutput } from './output-folder.js';
import { processUnit } from './process-unit.js';
import { FilterProgress } from './progress.js';

export interface LocalRunRequest {
  output: string;
  inputs: InputFile[];
  options: ResultOptions;
  model: ManifestModel;
  overwrite: boolean;
  /** Created only when there is work to do (a finished output is never re-scored). */
  engine: () => Promise<Engine>;
  /** Redrawn as pairs finish. */
  onProgress?: (progress: FilterProgress) => void;
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
 * complete, one after another, each committed (part renamed into place, then the manifest) before
 * the next starts, so a crash at any point loses at most the unit in progress.
 */
export async function runLocal(request: LocalRunRequest): Promise<FilterSummary> {
  const db = await openDuckDb();
  let engine: Engine | undefined;
  try {
    const opened = await openOutput(db.connection, request.output, request);
    const total = opened.todo.every((u) => u.kind === 'rows') ? opened.todo.reduce((n, u) => n + (u.kind === 'rows' ? u.count : 0), 0) : null;
    const progress = new FilterProgress(request.options, total);
    if (opened.todo.length > 0) engine = await request.engine();
    for (const unit of opened.todo) {
      const ctx = {
        engine: engine!, connection: db.connection, output: request.output, options: request.options, signal: request.signal,
        onProgress: (o: Parameters<FilterProgress['add']>[0]) => { progress.add(o); request.onProgress?.(progress); },
      };
      const part = await processUnit(ctx, unit);
      await recordUnitDone(request.output, unit, part);
    }
    const manifest = (await readManifest(request.output)) ?? opened.manifest;
    return {
      output: request.output, manifest, unitsRun: opened.todo.length, unitsSkipped: Object.keys(manifest.units).length - opened.todo.length,
      pairsRun: progress.counts.pairs, seconds: progress.seconds, resumed: opened.resumed,
    };
  } finally {
    await engine?.close();
    db.close();
  }
}
