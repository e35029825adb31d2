import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { BlipError } from '../errors.js';
import type { InputFormat } from './options.js';

export interface FilterDuckDb {
  /** The first connection. */
  connection: DuckDBConnection;
  /**
   * Another connection, for work running at the same time: a query on a connection ends the
   * stream of the query before it, so concurrent units must not share one.
   */
  connect(): Promise<DuckDBConnection>;
  close(): void;
}

/**
 * The filter's embedded DuckDB: reads CSV/JSONL/Parquet inputs and writes Parquet/JSONL parts.
 * One in-memory database per process; insertion order is preserved (the default), so a query's
 * rows come in file order and LIMIT/OFFSET ranges of a file are stable between runs.
 */
export async function openDuckDb(): Promise<FilterDuckDb> {
  const instance = await DuckDBInstance.create(':memory:', { preserve_insertion_order: 'true' });
  const connections = [await instance.connect()];
  return {
    connection: connections[0],
    async connect() {
      const c = await instance.connect();
      connections.push(c);
      return c;
    },
    close() {
      for (const c of connections) c.closeSync();
      instance.closeSync();
    },
  };
}

/** A SQL string literal. */
export function sqlString(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** A SQL identifier (a column name). */
export function sqlIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * The table function reading one input file. `textCol` and a path image column are read as
 * VARCHAR from CSV, whose sniffer would otherwise turn a caption "123" into a number.
 */
export function readExpression(format: Exclude<InputFormat, 'webdataset'>, file: string, varcharColumns: string[] = []): string {
  const path = sqlString(file);
  switch (format) {
    case 'csv': {
      const types = varcharColumns.map((c) => `${sqlString(c)}: 'VARCHAR'`).join(', ');
      return `read_csv(${path}${types ? `, types={${types}}` : ''})`;
    }
    case 'jsonl':
      return `read_json(${path}, format='newline_delimited')`;
    case 'parquet':
      return `read_parquet(${path})`;
  }
}

/** DuckDB's messages are multi-line; the first line says what went wrong. */
export function duckDbError(file: string, what: string, e: unknown): BlipError {
  const message = String((e as Error)?.message ?? e).split('\n')[0].trim();
  return new BlipError(`${file}: cannot ${what} (${message})`, { subject: file, cause: e });
}
