import { rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BOOLEAN, DOUBLE, DuckDBListType, type DuckDBConnection, type DuckDBType, type DuckDBValue, VARCHAR } from '@duckdb/node-api';
import type { PairOutcome } from '../engine/types.js';
import { sqlIdent, sqlString } from './duckdb.js';
import { keepPair, type OutputFormat, type ResultOptions } from './options.js';
import { tempPathFor } from './temp-files.js';

/** `part-<unit>.parquet` or `.jsonl`. */
export function partName(unit: string, format: OutputFormat): string {
  return `part-${unit}.${format}`;
}

export interface PartColumns {
  names: string[];
  types: DuckDBType[];
}

export interface PartSummary {
  part: string;
  bytes: number;
  rows: number;
  kept: number;
  errors: number;
}

const LOGITS = new DuckDBListType(DOUBLE);

/**
 * Writes one unit's part: the input columns as they were read (same DuckDB types, so Parquet keeps
 * them), then itm_probability, itm_logits (2 doubles), cosine, keep and error. The rows go into a
 * temporary DuckDB table through an appender, DuckDB writes the file to a temp name in the output
 * folder, and the temp file is renamed into place: the part appears whole or not at all.
 */
export async function writePart(
  connection: DuckDBConnection,
  output: string,
  unit: string,
  columns: PartColumns,
  rows: DuckDBValue[][],
  outcomes: PairOutcome[],
  options: Pick<ResultOptions, 'threshold' | 'minCosine' | 'format'>,
): Promise<PartSummary> {
  const table = `part_${unit.replace(/\W/g, '_')}`;
  const defs = columns.names.map((n, i) => `${sqlIdent(n)} ${columns.types[i].toString()}`);
  defs.push('itm_probability DOUBLE', 'itm_logits DOUBLE[]', 'cosine DOUBLE', 'keep BOOLEAN', 'error VARCHAR');
  await connection.run(`CREATE OR REPLACE TEMP TABLE ${table} (${defs.join(', ')})`);
  let kept = 0;
  let errors = 0;
  const final = join(output, partName(unit, options.format));
  const tmp = tempPathFor(final);
  try {
    const appender = await connection.createAppender(table);
    try {
      rows.forEach((row, r) => {
        row.forEach((v, c) => appender.appendValue(v, columns.types[c]));
        const o = outcomes[r];
        if (o.ok) {
          const keep = keepPair(options, o.itmProbability, o.cosine);
          if (keep) kept++;
          appender.appendDouble(o.itmProbability);
          appender.appendList(o.itmLogits, LOGITS);
          appender.appendDouble(o.cosine);
          appender.appendBoolean(keep);
          appender.appendNull();
        } else {
          errors++;
          appender.appendNull();
          appender.appendNull();
          appender.appendNull();
          appender.appendValue(false, BOOLEAN);
          appender.appendValue(o.error, VARCHAR);
        }
        appender.endRow();
      });
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    const format = options.format === 'parquet' ? 'FORMAT parquet' : 'FORMAT json';
    await connection.run(`COPY ${table} TO ${sqlString(tmp)} (${format})`);
    const bytes = (await stat(tmp)).size;
    await rename(tmp, final);
    return { part: partName(unit, options.format), bytes, rows: rows.length, kept, errors };
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${table}`);
  }
}
