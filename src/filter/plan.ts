import type { DuckDBConnection } from '@duckdb/node-api';
import type { InputFile } from './inputs.js';
import type { ResultOptions } from './options.js';
import { describeTable } from './table-reader.js';

/**
 * A unit of work: a range of one table file's rows, or one WebDataset shard. Units never span
 * files, so a unit's rows are fixed by the input files alone (which the manifest pins by size and
 * modification time).
 */
export type Unit =
  | { id: string; kind: 'rows'; file: string; offset: number; count: number; rowBase: number; varchar: string[] }
  | { id: string; kind: 'shard'; file: string };

/** Part file names sort in unit order: part-00000, part-00001, ... */
export function unitId(index: number): string {
  return String(index).padStart(5, '0');
}

/**
 * Cuts the inputs into units: each table file into ranges of `unitRows` rows (the last one
 * shorter), each shard into one unit. `rowBase` is the row number of the range's first row across
 * all files in sorted order (the default id).
 */
export async function planUnits(connection: DuckDBConnection, files: InputFile[], options: ResultOptions): Promise<{ units: Unit[]; rows: number | null }> {
  const units: Unit[] = [];
  if (options.inputFormat === 'webdataset') {
    for (const f of files) units.push({ id: unitId(units.length), kind: 'shard', file: f.path });
    return { units, rows: null };
  }
  let rowBase = 0;
  for (const f of files) {
    const { rows, varchar } = await describeTable(connection, options.inputFormat, f.path, options);
    for (let offset = 0; offset < rows; offset += options.unitRows) {
      const count = Math.min(options.unitRows, rows - offset);
      units.push({ id: unitId(units.length), kind: 'rows', file: f.path, offset, count, rowBase: rowBase + offset, varchar });
    }
    rowBase += rows;
  }
  return { units, rows: rowBase };
}
