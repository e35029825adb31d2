import type { DuckDBConnection, DuckDBType, DuckDBValue } from '@duckdb/node-api';
import { BlipError } from '../errors.js';
import { oneLine } from '../io/files.js';
import { duckDbError, readExpression } from './duckdb.js';
import type { InputFormat } from './options.js';

export type TableFormat = Exclude<InputFormat, 'webdataset'>;

/** Column names and DuckDB types of a table, as read. */
export interface TableSchema {
  names: string[];
  types: DuckDBType[];
}

export interface TableRows extends TableSchema {
  rows: DuckDBValue[][];
}

/** Columns read as VARCHAR from CSV (see readExpression): the text column and the image path column. */
function varcharColumns(format: TableFormat, present: string[], wanted: string[]): string[] {
  return format === 'csv' ? wanted.filter((c) => present.includes(c)) : [];
}

/**
 * The file's columns and row count, checking that the image and text columns (and the id column,
 * when given) exist; the message lists the columns there are.
 */
export async function describeTable(
  connection: DuckDBConnection,
  format: TableFormat,
  file: string,
  required: { imageCol: string; textCol: string; idCol: string | null },
): Promise<{ schema: TableSchema; rows: number; varchar: string[] }> {
  let names: string[];
  try {
    const probe = await connection.runAndReadAll(`SELECT * FROM ${readExpression(format, file)} LIMIT 0`);
    names = probe.columnNames();
  } catch (e) {
    throw duckDbError(file, `read it as ${format}`, e);
  }
  for (const [option, col] of [['--image-col', required.imageCol], ['--text-col', required.textCol], ['--id-col', required.idCol]] as const) {
    if (col !== null && !names.includes(col)) {
      throw new BlipError(`${oneLine(file)}: no column "${col}" (${option}); columns: ${names.map((n) => `"${n}"`).join(', ')}`, { subject: file });
    }
  }
  const varchar = varcharColumns(format, names, [required.textCol, required.imageCol]);
  try {
    const expr = readExpression(format, file, varchar);
    const reader = await connection.runAndReadAll(`SELECT * FROM ${expr} LIMIT 0`);
    const counted = await connection.runAndReadAll(`SELECT count(*) FROM ${expr}`);
    return { schema: { names: reader.columnNames(), types: reader.columnTypes() }, rows: Number(counted.getRowsJS()[0][0]), varchar };
  } catch (e) {
    throw duckDbError(file, `read it as ${format}`, e);
  }
}

/** Rows [offset, offset + count) of a file, in file order. */
export async function readTableRows(
  connection: DuckDBConnection,
  format: TableFormat,
  file: string,
  range: { offset: number; count: number },
  varchar: string[],
): Promise<TableRows> {
  try {
    const result = await connection.stream(`SELECT * FROM ${readExpression(format, file, varchar)} LIMIT ${range.count} OFFSET ${range.offset}`);
    const rows: DuckDBValue[][] = [];
    for await (const batch of result.yieldRows()) for (const row of batch) rows.push(row);
    return { names: result.columnNames(), types: result.columnTypes(), rows };
  } catch (e) {
    throw duckDbError(file, `read rows ${range.offset}..${range.offset + range.count - 1}`, e);
  }
}
