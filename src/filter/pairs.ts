import { isAbsolute, resolve } from 'node:path';
import { DuckDBBlobValue, DuckDBStructValue, type DuckDBValue } from '@duckdb/node-api';
import type { ImageSource } from '../engine/types.js';
import { FileError, resolveInside } from '../io/files.js';
import { preCaption } from '../retrieval/pre-caption.js';

/** What a row asks to score, or why it cannot be scored (it is kept in the output with that error). */
export type RowPair = { ok: true; image: ImageSource; text: string } | { ok: false; error: string };

/**
 * The image of a row: a path string (under `imageRoot` when given, kept inside it), encoded
 * bytes (a BLOB, as img2dataset writes them), or a `{bytes, path}` struct (Hugging Face datasets'
 * Image feature).
 */
export async function imageOfValue(value: DuckDBValue | Uint8Array | undefined, imageRoot: string | null, label: string): Promise<ImageSource | string> {
  if (value === null || value === undefined) return 'no image (the image column is empty)';
  if (value instanceof Uint8Array) return value.length > 0 ? { bytes: value, label } : 'the image bytes are empty';
  if (value instanceof DuckDBBlobValue) return imageOfValue(value.bytes, imageRoot, label);
  if (value instanceof DuckDBStructValue) {
    const { bytes, path } = value.entries as Record<string, DuckDBValue | undefined>;
    if (bytes !== null && bytes !== undefined) return imageOfValue(bytes, imageRoot, label);
    return imageOfValue(path, imageRoot, label);
  }
  if (typeof value !== 'string') return 'the image column holds neither a path nor image bytes';
  if (value === '') return 'no image (empty path)';
  if (imageRoot === null) return { path: isAbsolute(value) ? value : resolve(value), label: value };
  try {
    return { path: await resolveInside(imageRoot, value, 'image path'), label: value };
  } catch (e) {
    if (e instanceof FileError) return e.message;
    throw e;
  }
}

/** The caption of a row, cleaned by BLIP's pre_caption when asked; an error for anything unscorable. */
export function textOfValue(value: DuckDBValue | string | undefined, options: { preCaption: boolean; json?: boolean }): string | { error: string } {
  if (value === null || value === undefined) return { error: 'no caption (the text column is empty)' };
  let text: unknown = value;
  // A JSON column (DuckDB's type when a JSONL key holds mixed types): only a JSON string is text.
  if (options.json && typeof text === 'string') {
    try {
      text = JSON.parse(text) as unknown;
    } catch {
      return { error: 'the caption is not text' };
    }
  }
  if (typeof text !== 'string') return { error: 'the caption is not text' };
  if (text.includes('\0')) return { error: 'the caption contains a NUL byte' };
  const cleaned = options.preCaption ? preCaption(text) : text;
  if (cleaned.trim() === '') return { error: 'empty caption' };
  return cleaned;
}

export async function rowPair(
  image: DuckDBValue | Uint8Array | undefined,
  text: DuckDBValue | string | undefined,
  options: { imageRoot: string | null; preCaption: boolean; textIsJson?: boolean; label: string },
): Promise<RowPair> {
  const source = await imageOfValue(image, options.imageRoot, options.label);
  if (typeof source === 'string') return { ok: false, error: source };
  const caption = textOfValue(text, { preCaption: options.preCaption, json: options.textIsJson });
  if (typeof caption !== 'string') return { ok: false, error: caption.error };
  return { ok: true, image: source, text: caption };
}
