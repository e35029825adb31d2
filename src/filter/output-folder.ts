import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { BlipError } from '../errors.js';
import { oneLine } from '../io/files.js';
import type { InputFile } from './inputs.js';
import { incompatibility, MANIFEST_NAME, type Manifest, type ManifestModel, newManifest, readManifest, unitComplete, writeManifest } from './manifest.js';
import type { ResultOptions } from './options.js';
import { planUnits, type Unit } from './plan.js';
import { cleanStaleTemps, isTempName } from './temp-files.js';

const PART = /^part-\d+\.(parquet|jsonl)$/;

/** Removes what an earlier filter run wrote (parts, manifest, temp files), nothing else. */
async function clearOutput(output: string): Promise<void> {
  for (const name of await readdir(output)) {
    if (PART.test(name) || name === MANIFEST_NAME || isTempName(name)) await unlink(join(output, name)).catch(() => {});
  }
}

export interface OpenedOutput {
  manifest: Manifest;
  /** Units still to do (not complete: never done, or their part is missing or differs). */
  todo: Unit[];
  /** Whether an earlier run's manifest was resumed. */
  resumed: boolean;
  /** Stale temp files removed. */
  cleaned: number;
}

/**
 * Prepares the output folder of a run: creates it, removes temp files nobody is writing, and
 * either resumes the manifest there (same model, options and inputs; else refused unless
 * `overwrite`) or plans the units and writes a new one.
 */
export async function openOutput(
  connection: DuckDBConnection,
  output: string,
  request: { model: ManifestModel; options: ResultOptions; inputs: InputFile[]; overwrite: boolean },
): Promise<OpenedOutput> {
  await mkdir(output, { recursive: true });
  const cleaned = await cleanStaleTemps(output);
  let existing = await readManifest(output);
  if (existing) {
    const why = incompatibility(existing, request.model, request.options, request.inputs);
    if (why && !request.overwrite) {
      throw new BlipError(`${oneLine(output)}: the output folder holds another filter run: ${why}; use --overwrite to replace it, or another --output`, { subject: output });
    }
    if (why) {
      await clearOutput(output);
      existing = undefined;
    }
  } else if (request.overwrite) {
    await clearOutput(output);
  } else {
    const strays = (await readdir(output)).filter((n) => PART.test(n));
    if (strays.length > 0) throw new BlipError(`${oneLine(output)}: holds part files but no ${MANIFEST_NAME}; use --overwrite to replace them`, { subject: output });
  }
  let manifest = existing;
  if (!manifest) {
    const { units, rows } = await planUnits(connection, request.inputs, request.options);
    manifest = newManifest(request.model, request.options, request.inputs, units, rows);
    await writeManifest(output, manifest);
  }
  const todo: Unit[] = [];
  for (const entry of Object.values(manifest.units)) {
    if (!(await unitComplete(output, entry))) todo.push(unitOf(entry));
  }
  return { manifest, todo, resumed: existing !== undefined, cleaned };
}

/** The unit's plan, without its state. */
export function unitOf(entry: Manifest['units'][string]): Unit {
  return entry.kind === 'rows'
    ? { id: entry.id, kind: 'rows', file: entry.file, offset: entry.offset, count: entry.count, rowBase: entry.rowBase, varchar: entry.varchar }
    : { id: entry.id, kind: 'shard', file: entry.file };
}
