/**
 * Values out of the tokenizer's JSON files: strict UTF-8 and JSON parsing, typed flags, and the
 * `AddedToken` descriptions transformers writes (tokenizer_config.json, special_tokens_map.json,
 * tokenizer.json). Every problem is a CheckpointError naming the file and the key.
 */
import { CheckpointError } from '../../errors.js';
import type { SpecialValue } from './added-tokens.js';
import type { AddedTokenSpec } from './types.js';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Strict UTF-8, as Python's `open(encoding="utf-8")` reads the files. */
export function decodeUtf8(file: string, bytes: Uint8Array): string {
  try {
    // ignoreBOM: keep a BOM as a character, as Python's "utf-8" codec does.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    throw new CheckpointError(file, 'is not valid UTF-8', { cause: err });
  }
}

/** A file holding one JSON object; a leading BOM is skipped. */
export function parseJsonObject(file: string, bytes: Uint8Array): JsonObject {
  let text = decodeUtf8(file, bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(file, `malformed JSON (${(err as Error).message})`, { cause: err });
  }
  if (!isObject(value)) throw new CheckpointError(file, 'expected a JSON object at the top level');
  return value;
}

/** An optional boolean setting: absent or null gives `dflt`. */
export function optBool(file: string, obj: JsonObject, key: string, dflt: boolean): boolean {
  const v = obj[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new CheckpointError(file, `"${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** transformers' `AddedToken(**dict)`: normalized defaults to `not special`. */
export function addedTokenFromJson(file: string, where: string, v: Json, forceSpecial = false): AddedTokenSpec {
  if (!isObject(v) || typeof v.content !== 'string') {
    throw new CheckpointError(file, `${where}: expected an added-token object with a string "content"`);
  }
  const flag = (key: string, dflt: boolean): boolean => {
    const x = v[key];
    if (x === undefined || x === null) return dflt;
    if (typeof x !== 'boolean') throw new CheckpointError(file, `${where}: "${key}" must be a boolean`);
    return x;
  };
  const special = forceSpecial || flag('special', false);
  return {
    content: v.content,
    singleWord: flag('single_word', false),
    lstrip: flag('lstrip', false),
    rstrip: flag('rstrip', false),
    normalized: flag('normalized', !special),
    special,
  };
}

export function specialValueFromJson(file: string, key: string, v: Json, forceSpecial: boolean): SpecialValue | null {
  if (v === null) return null;
  if (typeof v === 'string') return v;
  return addedTokenFromJson(file, `"${key}"`, v, forceSpecial);
}

/** `additional_special_tokens`: strings or `AddedToken` objects. */
export function readAdditional(file: string, value: Json | undefined, forceSpecial: boolean): SpecialValue[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new CheckpointError(file, '"additional_special_tokens" must be a list');
  return value.map((v, i) => {
    if (typeof v === 'string') return v;
    return addedTokenFromJson(file, `additional_special_tokens[${i}]`, v, forceSpecial);
  });
}

/** tokenizer.json's `added_tokens` list, as [id, token] pairs. */
export function readTokenizerJsonAdded(file: string, tokJson: JsonObject): Array<[number, AddedTokenSpec]> {
  const list = tokJson.added_tokens;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new CheckpointError(file, '"added_tokens" must be a list');
  return list.map((entry, i) => {
    if (!isObject(entry) || typeof entry.id !== 'number' || !Number.isSafeInteger(entry.id) || entry.id < 0) {
      throw new CheckpointError(file, `added_tokens[${i}] has no valid "id"`);
    }
    return [entry.id, addedTokenFromJson(file, `added_tokens[${i}]`, entry)];
  });
}

/** The BertNormalizer settings of a tokenizer.json normalizer (directly or inside a Sequence). */
export function findBertNormalizer(n: Json | undefined): JsonObject | undefined {
  if (!isObject(n)) return undefined;
  if (n.type === 'BertNormalizer') return n;
  if (n.type === 'Sequence' && Array.isArray(n.normalizers)) {
    for (const m of n.normalizers) {
      const found = findBertNormalizer(m);
      if (found) return found;
    }
  }
  return undefined;
}
