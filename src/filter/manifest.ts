import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Dtype } from '../checkpoint/dtype.js';
import { BlipError } from '../errors.js';
import { FILE_LIMITS, oneLine, readJsonFile } from '../io/files.js';
import type { ModelIdentity } from '../retrieval/model-identity.js';
import type { InputFile } from './inputs.js';
import type { ResultOptions } from './options.js';
import type { PartSummary } from './part-writer.js';
import type { Unit } from './plan.js';
import { writeFileAtomic } from './temp-files.js';

export const MANIFEST_NAME = 'manifest.json';

/** The model as the manifest and the queue's jobs name it; `fingerprint` decides sameness. */
export interface ManifestModel {
  model: string;
  revision: string | null;
  commit: string | null;
  weightsFile: string;
  fingerprint: string;
  /** The precision scores were computed in (absent in manifests made before dtypes existed: fp32). */
  dtype?: Dtype;
}

/** Whether two model records give the same scores: the same weights in the same precision. */
export function sameModel(a: Pick<ManifestModel, 'fingerprint' | 'dtype'>, b: Pick<ManifestModel, 'fingerprint' | 'dtype'>): boolean {
  return a.fingerprint === b.fingerprint && (a.dtype ?? 'fp32') === (b.dtype ?? 'fp32');
}

function describeModel(m: ManifestModel): string {
  const dtype = (m.dtype ?? 'fp32') === 'fp32' ? '' : `, ${m.dtype}`;
  return `${m.model}, ${m.fingerprint.slice(-12)}${dtype}`;
}

export type UnitState = { state: 'pending' } | ({ state: 'done'; finishedAt: string } & PartSummary);

export interface Manifest {
  version: 1;
  tool: 'blip-itm filter';
  model: ManifestModel;
  options: ResultOptions;
  inputs: InputFile[];
  /** Rows across the inputs (null for WebDataset, counted as shards are read). */
  inputRows: number | null;
  units: Record<string, Unit & UnitState>;
  totals: { units: number; unitsDone: number; rows: number; kept: number; errors: number };
  createdAt: string;
  updatedAt: string;
}

export function manifestModel(identity: ModelIdentity): ManifestModel {
  return { model: identity.model, revision: identity.revision ?? null, commit: identity.commit ?? null, weightsFile: identity.weightsFile, fingerprint: identity.fingerprint, dtype: identity.dtype ?? 'fp32' };
}

export function newManifest(model: ManifestModel, options: ResultOptions, inputs: InputFile[], units: Unit[], inputRows: number | null): Manifest {
  const now = new Date().toISOString();
  const manifest: Manifest = {
    version: 1, tool: 'blip-itm filter', model, options, inputs, inputRows,
    units: Object.fromEntries(units.map((u) => [u.id, { ...u, state: 'pending' as const }])),
    totals: { units: units.length, unitsDone: 0, rows: 0, kept: 0, errors: 0 },
    createdAt: now, updatedAt: now,
  };
  return manifest;
}

export async function readManifest(output: string): Promise<Manifest | undefined> {
  const path = join(output, MANIFEST_NAME);
  try {
    await stat(path);
  } catch {
    return undefined;
  }
  const m = await readJsonFile(path, { maxBytes: FILE_LIMITS.annotations, what: 'a filter manifest' }) as Manifest;
  if (m?.tool !== 'blip-itm filter' || m.version !== 1 || typeof m.units !== 'object') {
    throw new BlipError(`${oneLine(path)}: not a blip-itm filter manifest (version 1)`, { subject: path });
  }
  return m;
}

export async function writeManifest(output: string, manifest: Manifest): Promise<void> {
  manifest.updatedAt = new Date().toISOString();
  await writeFileAtomic(join(output, MANIFEST_NAME), `${JSON.stringify(manifest, null, 1)}\n`);
}

function describeValue(v: unknown): string {
  return v === null ? 'none' : typeof v === 'string' ? `"${v}"` : JSON.stringify(v);
}

/**
 * Why an existing output cannot be resumed by this run (another model, option or input), or
 * undefined when it can. Names the first difference, as a user would fix it.
 */
export function incompatibility(existing: Manifest, model: ManifestModel, options: ResultOptions, inputs: InputFile[]): string | undefined {
  if (!sameModel(existing.model, model)) {
    return `it was made with another model (${describeModel(existing.model)}; now ${describeModel(model)})`;
  }
  for (const key of Object.keys(options) as (keyof ResultOptions)[]) {
    if (!isDeepStrictEqual(existing.options[key], options[key])) {
      return `it was made with ${key} ${describeValue(existing.options[key])} (now ${describeValue(options[key])})`;
    }
  }
  const before = new Map(existing.inputs.map((f) => [f.path, f]));
  for (const f of inputs) {
    const b = before.get(f.path);
    if (!b) return `its inputs did not include ${oneLine(f.path)}`;
    if (b.size !== f.size || b.mtimeMs !== f.mtimeMs) return `the input ${oneLine(f.path)} changed since (size or modification time)`;
    before.delete(f.path);
  }
  if (before.size > 0) return `its inputs also included ${oneLine([...before.keys()][0])}`;
  return undefined;
}

/** A unit is complete when the manifest says done and its part file is there with that size. */
export async function unitComplete(output: string, entry: Unit & UnitState): Promise<boolean> {
  if (entry.state !== 'done') return false;
  try {
    return (await stat(join(output, entry.part))).size === entry.bytes;
  } catch {
    return false;
  }
}

function recomputeTotals(m: Manifest): void {
  const t = { units: 0, unitsDone: 0, rows: 0, kept: 0, errors: 0 };
  for (const u of Object.values(m.units)) {
    t.units++;
    if (u.state === 'done') {
      t.unitsDone++;
      t.rows += u.rows;
      t.kept += u.kept;
      t.errors += u.errors;
    }
  }
  m.totals = t;
}

const LOCK = '.manifest.lock';
/** A manifest update takes milliseconds; a lock this old belongs to a process that died holding it. */
const LOCK_STALE_MS = 30_000;

/**
 * Runs `update` on the manifest under a lock (a folder, created atomically, also on NFS), so
 * workers on several machines that share the output folder never lose each other's updates.
 */
export async function updateManifest(output: string, update: (m: Manifest) => void): Promise<Manifest> {
  const lock = join(output, LOCK);
  const started = Date.now();
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, 'owner'), `${hostname()} ${process.pid}\n`).catch(() => {});
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try {
        if (Date.now() - (await stat(lock)).mtimeMs > LOCK_STALE_MS) await rm(lock, { recursive: true, force: true });
      } catch {
        // Released meanwhile.
      }
      if (Date.now() - started > 5 * LOCK_STALE_MS) throw new BlipError(`${oneLine(lock)}: the manifest stays locked; remove the folder if no filter is running`);
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
    }
  }
  try {
    const m = await readManifest(output);
    if (!m) throw new BlipError(`${oneLine(join(output, MANIFEST_NAME))}: the manifest is gone (was the output folder replaced?)`);
    update(m);
    recomputeTotals(m);
    await writeManifest(output, m);
    return m;
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Records a committed part (after its rename: a crash in between only redoes the unit). */
export function recordUnitDone(output: string, unit: Unit, part: PartSummary): Promise<Manifest> {
  return updateManifest(output, (m) => {
    m.units[unit.id] = { ...unit, state: 'done', finishedAt: new Date().toISOString(), ...part };
  });
}
