import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

export interface PartRow {
  id: string;
  itm_probability: number | null;
  itm_logits: number[] | null;
  cosine: number | null;
  keep: boolean;
  error: string | null;
  [column: string]: unknown;
}

/** Every row of every part file in an output folder, read back with DuckDB. */
export async function readParts(output: string, idColumn: string): Promise<PartRow[]> {
  const parts = readdirSync(output).filter((n) => /^part-\d+\.(parquet|jsonl)$/.test(n)).sort();
  if (parts.length === 0) return [];
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const rows: PartRow[] = [];
    for (const p of parts) {
      const path = join(output, p).replace(/'/g, "''");
      const from = p.endsWith('.parquet') ? `read_parquet('${path}')` : `read_json('${path}', format='newline_delimited')`;
      const reader = await conn.runAndReadAll(`SELECT * FROM ${from}`);
      for (const r of reader.getRowObjectsJS()) rows.push({ ...(r as Record<string, unknown>), id: String(r[idColumn]) } as PartRow);
    }
    return rows;
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

/** Files in the output folder that are temp files of the filter. */
export function tempFiles(output: string): string[] {
  return readdirSync(output).filter((n) => n.includes('.tmp-') || n === '.manifest.lock');
}
