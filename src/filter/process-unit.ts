import { BIGINT, type DuckDBConnection, type DuckDBValue, VARCHAR } from '@duckdb/node-api';
import type { Engine, PairOutcome } from '../engine/types.js';
import { BlipError } from '../errors.js';
import { oneLine } from '../io/files.js';
import { ROW_COLUMN, type ResultOptions, SCORE_COLUMNS } from './options.js';
import { type RowPair, rowPair } from './pairs.js';
import { type PartColumns, type PartSummary, writePart } from './part-writer.js';
import type { Unit } from './plan.js';
import { scoreRows } from './score-rows.js';
import { readTableRows } from './table-reader.js';
import { readShard, WEBDATASET_IMAGE_EXTENSIONS } from './webdataset-reader.js';

export interface UnitContext {
  engine: Engine;
  connection: DuckDBConnection;
  output: string;
  options: ResultOptions;
  /** Called as pairs finish (scored or failed). */
  onProgress?: (outcomes: PairOutcome[]) => void;
  signal?: AbortSignal;
}

interface PendingRow {
  values: DuckDBValue[];
  pair: RowPair | null;
}

function takePair(row: PendingRow): RowPair {
  const pair = row.pair!;
  // The image bytes are the engine's now; the row keeps only what is written out.
  row.pair = null;
  return pair;
}

/** Output columns may not shadow the ones the filter adds. */
export function checkColumnNames(names: string[], file: string): void {
  for (const added of [...SCORE_COLUMNS, ROW_COLUMN]) {
    if (names.includes(added)) throw new BlipError(`${oneLine(file)}: has a column "${added}", which the filter adds to its output; rename it`, { subject: file });
  }
}

/** Reads, scores and writes one unit; its part file is in place when this returns. */
export async function processUnit(ctx: UnitContext, unit: Unit): Promise<PartSummary> {
  return unit.kind === 'rows' ? processTableUnit(ctx, unit) : processShardUnit(ctx, unit);
}

async function processTableUnit(ctx: UnitContext, unit: Extract<Unit, { kind: 'rows' }>): Promise<PartSummary> {
  const { options } = ctx;
  if (options.inputFormat === 'webdataset') throw new Error('a row unit of a WebDataset input');
  const table = await readTableRows(ctx.connection, options.inputFormat, unit.file, unit, unit.varchar);
  checkColumnNames(table.names, unit.file);
  if (table.rows.length !== unit.count) {
    throw new BlipError(`${oneLine(unit.file)}: read ${table.rows.length} rows at offset ${unit.offset} where ${unit.count} were planned; did the file change?`, { subject: unit.file });
  }
  const imageAt = table.names.indexOf(options.imageCol);
  const textAt = table.names.indexOf(options.textCol);
  if (imageAt < 0 || textAt < 0) throw new BlipError(`${oneLine(unit.file)}: the image or text column is missing`, { subject: unit.file });
  const textIsJson = table.types[textAt].alias === 'JSON';
  async function* pending(): AsyncGenerator<PendingRow> {
    for (let i = 0; i < table.rows.length; i++) {
      const values = table.rows[i];
      const label = `${unit.file} row ${unit.offset + i}`;
      const pair = await rowPair(values[imageAt], values[textAt], { imageRoot: options.imageRoot, preCaption: options.preCaption, textIsJson, label });
      values.push(BigInt(unit.rowBase + i));
      yield { values, pair };
    }
  }
  const { rows, outcomes } = await scoreRows(ctx.engine, pending(), takePair, ctx.onProgress, ctx.signal);
  const columns: PartColumns = { names: [...table.names, ROW_COLUMN], types: [...table.types, BIGINT] };
  return writePart(ctx.connection, ctx.output, unit.id, columns, rows.map((r) => r.values), outcomes, options);
}

/** WebDataset rows: the key, the shard, the caption and JSON members as text; the image stays in the shard. */
const SHARD_COLUMNS: PartColumns = { names: ['__key__', '__shard__', 'txt', 'json'], types: [VARCHAR, VARCHAR, VARCHAR, VARCHAR] };

async function processShardUnit(ctx: UnitContext, unit: Extract<Unit, { kind: 'shard' }>): Promise<PartSummary> {
  const { options } = ctx;
  // The default image column names no member; any other value picks that member extension.
  const imageExts = options.imageCol === 'image' ? WEBDATASET_IMAGE_EXTENSIONS : [options.imageCol.toLowerCase()];
  async function* pending(): AsyncGenerator<PendingRow> {
    for await (const sample of readShard(unit.file)) {
      const txt = sample.members.get('txt')?.toString('utf8') ?? null;
      const jsonText = sample.members.get('json')?.toString('utf8') ?? null;
      let json: Record<string, unknown> | undefined;
      let jsonError: string | undefined;
      if (jsonText !== null) {
        try {
          const parsed = JSON.parse(jsonText) as unknown;
          if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
          else jsonError = 'the json member is not an object';
        } catch {
          jsonError = 'the json member is not valid JSON';
        }
      }
      const ext = imageExts.find((e) => sample.members.has(e));
      const image = ext === undefined ? undefined : sample.members.get(ext);
      const text = txt ?? (json ? (json[options.textCol] as DuckDBValue | undefined) : undefined);
      let pair: RowPair;
      if (ext === undefined) pair = { ok: false, error: `no image member (${imageExts.map((e) => `.${e}`).join(', ')})` };
      else if (txt === null && jsonError) pair = { ok: false, error: jsonError };
      else pair = await rowPair(image, text, { imageRoot: null, preCaption: options.preCaption, label: `${unit.file}:${sample.key}` });
      yield { values: [sample.key, unit.file, txt, jsonText], pair };
    }
  }
  const { rows, outcomes } = await scoreRows(ctx.engine, pending(), takePair, ctx.onProgress, ctx.signal);
  return writePart(ctx.connection, ctx.output, unit.id, SHARD_COLUMNS, rows.map((r) => r.values), outcomes, options);
}
