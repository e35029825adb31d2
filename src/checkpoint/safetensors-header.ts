import { CheckpointError } from '../errors.js';
import type { ByteSource } from './byte-source.js';
import { DTYPE_BYTES, type TensorDType, type TensorIndex, type TensorInfo } from './tensor-info.js';

/**
 * safetensors layout: u64 little-endian header length N, N bytes of JSON, then the data
 * section. Every tensor entry is {dtype, shape, data_offsets: [begin, end]} relative to the
 * data section. We only ever read the header here; tensor bytes stay on disk for ORT to map.
 */

/** Headers of real checkpoints are a few tens of KB; 100 MB matches the reference implementation's cap. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsFile {
  path: string;
  metadata: Record<string, string>;
  tensors: TensorIndex;
  /** Absolute offset where the data section starts (8 + header length). */
  dataStart: number;
}

const KNOWN_DTYPES = new Set(Object.keys(DTYPE_BYTES));

/**
 * Parses the header JSON. `file` names the file in errors; `infoFile` (default `file`) is what
 * every TensorInfo.file says (the browser's graphs name their packed weights differently).
 */
export function parseHeader(file: string, headerBuf: Uint8Array, fileSize: number, infoFile = file): SafetensorsFile {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(headerBuf));
  } catch (e) {
    // The position only: the parser's message would echo the header's bytes.
    const at = /position (\d+)/.exec((e as Error).message);
    throw new CheckpointError(file, `header is not well-formed JSON${at ? ` (syntax error at byte ${at[1]} of the header)` : ''}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new CheckpointError(file, 'header JSON must be an object mapping tensor names to entries');
  }
  const dataStart = 8 + headerBuf.length;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: TensorIndex = new Map();
  const spans: Array<[number, number, string]> = [];

  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        throw new CheckpointError(file, '__metadata__ must be an object of string values');
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new CheckpointError(file, `__metadata__.${k} must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    const info = parseEntry(file, name, entry, dataStart, dataSize, infoFile);
    tensors.set(name, info);
    spans.push([info.offset, info.offset + info.length, name]);
  }

  // Overlapping tensors would let one weight silently alias another.
  spans.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1];
    const cur = spans[i];
    if (cur[0] < prev[1]) {
      throw new CheckpointError(file, `tensors "${prev[2]}" and "${cur[2]}" overlap in the data section`);
    }
  }
  return { path: infoFile, metadata, tensors, dataStart };
}

function parseEntry(file: string, name: string, entry: unknown, dataStart: number, dataSize: number, infoFile: string): TensorInfo {
  const where = `tensor "${name}"`;
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new CheckpointError(file, `${where}: entry must be an object with dtype, shape and data_offsets`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (typeof dtype !== 'string' || !KNOWN_DTYPES.has(dtype)) {
    throw new CheckpointError(file, `${where}: unknown dtype ${JSON.stringify(dtype)} (known: ${[...KNOWN_DTYPES].join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new CheckpointError(file, `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) || offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[1] < offsets[0]
  ) {
    throw new CheckpointError(file, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  if (end > dataSize) {
    throw new CheckpointError(file, `${where}: data_offsets [${begin}, ${end}] run past the data section (${dataSize} bytes)`);
  }
  // Multiply step by step so an absurd shape cannot overflow past the safe-integer range unnoticed.
  let expected = DTYPE_BYTES[dtype as TensorDType];
  for (const d of shape as number[]) {
    expected *= d;
    if (!Number.isSafeInteger(expected)) throw new CheckpointError(file, `${where}: shape ${JSON.stringify(shape)} is too large`);
  }
  if (expected !== end - begin) {
    throw new CheckpointError(
      file,
      `${where}: shape ${JSON.stringify(shape)} of ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype: dtype as TensorDType, shape: shape as number[], file: infoFile, offset: dataStart + begin, length: end - begin };
}

/**
 * Reads and parses the header of a safetensors file through any platform's byte source: two
 * reads, the length and the JSON. Errors name `source.label`; TensorInfo.file is `infoFile`.
 */
export async function readSafetensorsHeader(source: ByteSource, infoFile = source.label): Promise<SafetensorsFile> {
  const size = await source.size();
  if (size < 8) throw new CheckpointError(source.label, `file is ${size} bytes, too short for a safetensors header (needs at least 8)`);
  const lenBytes = await source.read(0, 8);
  const headerLen = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(source.label, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit; not a safetensors file?`);
  }
  const n = Number(headerLen);
  if (8 + n > size) {
    throw new CheckpointError(source.label, `header length ${n} runs past the end of the ${size}-byte file (truncated?)`);
  }
  return parseHeader(source.label, await source.read(8, n), size, infoFile);
}
