import { resolve } from 'node:path';
import { BlipError, UsageError } from '../errors.js';
import { FileError, oneLine, statRegularFile } from '../io/files.js';
import { duckDbError, openDuckDb, sqlString } from './duckdb.js';
import type { InputFormat } from './options.js';

/** An input file as recorded in the manifest: a rerun checks that none changed. */
export interface InputFile {
  /** Absolute path. */
  path: string;
  size: number;
  mtimeMs: number;
}

const EXTENSIONS: Record<string, InputFormat> = {
  '.jsonl': 'jsonl',
  '.ndjson': 'jsonl',
  '.csv': 'csv',
  '.parquet': 'parquet',
  '.tar': 'webdataset',
};

export function parseInputFormat(value: string): InputFormat {
  if (value === 'jsonl' || value === 'csv' || value === 'parquet' || value === 'webdataset') return value;
  throw new UsageError(`--input-format must be jsonl, csv, parquet or webdataset, got "${value}"`);
}

/** The format a file name implies, or undefined. */
export function formatOfName(path: string): InputFormat | undefined {
  const lower = path.toLowerCase();
  for (const [ext, format] of Object.entries(EXTENSIONS)) if (lower.endsWith(ext)) return format;
  return undefined;
}

const GLOB = /[*?[]/;

/**
 * Expands `--input` values (files or globs: `*`, `?`, `[...]`, `**`, through DuckDB's glob) into
 * regular files, sorted by path and without duplicates, and settles the format: the given one,
 * else the one all the files' extensions imply.
 */
export async function discoverInputs(patterns: string[], format?: InputFormat): Promise<{ files: InputFile[]; format: InputFormat }> {
  if (patterns.length === 0) throw new UsageError('filter: give --input <file|glob>');
  const paths = new Set<string>();
  const db = await openDuckDb();
  try {
    for (const pattern of patterns) {
      if (pattern.trim() === '') throw new UsageError('--input must not be empty');
      if (!GLOB.test(pattern)) {
        paths.add(resolve(pattern));
        continue;
      }
      let found: string[];
      try {
        const reader = await db.connection.runAndReadAll(`SELECT file FROM glob(${sqlString(resolve(pattern))})`);
        found = reader.getRowsJS().map((r) => String(r[0]));
      } catch (e) {
        throw duckDbError(pattern, 'expand the glob', e);
      }
      if (found.length === 0) throw new BlipError(`--input ${oneLine(pattern)}: no file matches`, { subject: pattern });
      for (const f of found) paths.add(resolve(f));
    }
  } finally {
    db.close();
  }
  const sorted = [...paths].sort();
  const files: InputFile[] = [];
  for (const path of sorted) {
    const s = await statRegularFile(path, { what: 'an input file' });
    files.push({ path, size: s.size, mtimeMs: s.mtimeMs });
  }
  if (format !== undefined) return { files, format };
  const formats = new Set(sorted.map((p) => formatOfName(p)));
  if (formats.has(undefined)) {
    const odd = sorted.find((p) => formatOfName(p) === undefined)!;
    throw new FileError(odd, 'cannot tell the input format from the extension (.jsonl, .ndjson, .csv, .parquet, .tar); give --input-format');
  }
  if (formats.size > 1) throw new UsageError(`the input files mix formats (${[...formats].join(', ')}); give files of one format or --input-format`);
  return { files, format: [...formats][0]! };
}
