import { dirname, resolve } from 'node:path';
import { CheckpointError } from '../errors.js';
import { readJsonFile } from '../io/files.js';
import { openCheckpointFile } from './checkpoint-file.js';
import { FileByteSource } from './file-byte-source.js';
import { readSafetensorsHeader, type SafetensorsFile } from './safetensors-header.js';
import { type TensorIndex, type TensorInfo } from './tensor-info.js';

// The header parser is platform-neutral (the browser build reads headers by byte range); this
// module adds reading checkpoint files from disk.
export { MAX_HEADER_BYTES, readSafetensorsHeader, type SafetensorsFile } from './safetensors-header.js';

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const file = resolve(path);
  const source = await FileByteSource.open(file, 'a safetensors file');
  try {
    return await readSafetensorsHeader(source);
  } finally {
    await source.close();
  }
}

/**
 * Sharded checkpoints: `model.safetensors.index.json` maps each tensor name to a shard file
 * in the same folder. The result merges the shards' indexes.
 */
export async function readShardedSafetensors(indexPath: string): Promise<TensorIndex> {
  const file = resolve(indexPath);
  const index = await readJsonFile(file, { kind: 'indexJson', what: 'a safetensors shard index' });
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new CheckpointError(file, 'shard index has no "weight_map" object');
  }
  const shards = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new CheckpointError(file, `weight_map["${name}"] must be a plain file name in the same folder, got ${JSON.stringify(shard)}`);
    }
    if (!shards.has(shard)) shards.set(shard, []);
    shards.get(shard)!.push(name);
  }
  const merged: TensorIndex = new Map();
  for (const [shard, names] of shards) {
    const parsed = await readSafetensors(resolve(dirname(file), shard));
    for (const name of names) {
      const info = parsed.tensors.get(name);
      if (!info) throw new CheckpointError(parsed.path, `shard index says it holds "${name}" but it does not`);
      merged.set(name, info);
    }
  }
  return merged;
}

/** Typed view of a tensor's elements, for small tensors (goldens, tests) and data we must inspect. */
export type TensorData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

/** Reads a tensor's bytes from disk. F16/BF16 come back as raw Uint16Array bit patterns. */
export async function readTensorData(info: TensorInfo): Promise<TensorData> {
  const { handle } = await openCheckpointFile(info.file, 'a weights file');
  try {
    // Own, aligned buffer so typed views over it are always legal.
    const bytes = new Uint8Array(new ArrayBuffer(info.length));
    const { bytesRead } = await handle.read(bytes, 0, info.length, info.offset);
    if (bytesRead !== info.length) throw new CheckpointError(info.file, `tensor "${info.name}" is truncated`);
    const buf = bytes.buffer;
    switch (info.dtype) {
      case 'F32': return new Float32Array(buf);
      case 'F64': return new Float64Array(buf);
      case 'I64': return new BigInt64Array(buf);
      case 'I32': return new Int32Array(buf);
      case 'I16': return new Int16Array(buf);
      case 'I8': return new Int8Array(buf);
      case 'F16': case 'BF16': return new Uint16Array(buf);
      case 'U8': case 'BOOL': return bytes;
    }
  } finally {
    await handle.close();
  }
}
