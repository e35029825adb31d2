import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../errors.js';
import { readSafetensors, readShardedSafetensors } from './safetensors.js';
import type { TensorIndex } from './tensor-info.js';
import { readTorchBin } from './torch-bin.js';

/** Weight files in the order we prefer them: safetensors needs no unpickling at all. */
export const WEIGHT_FILES = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin'] as const;

export interface CheckpointWeights {
  /** The file the index was read from (the shard index for sharded checkpoints). */
  file: string;
  format: 'safetensors' | 'pytorch';
  tensors: TensorIndex;
}

/** Opens the weights of a checkpoint folder without reading any tensor data. */
export async function openWeights(dir: string): Promise<CheckpointWeights> {
  for (const name of WEIGHT_FILES) {
    const file = join(dir, name);
    if (!existsSync(file)) continue;
    switch (name) {
      case 'model.safetensors':
        return { file, format: 'safetensors', tensors: (await readSafetensors(file)).tensors };
      case 'model.safetensors.index.json':
        return { file, format: 'safetensors', tensors: await readShardedSafetensors(file) };
      case 'pytorch_model.bin':
        return { file, format: 'pytorch', tensors: (await readTorchBin(file)).tensors };
    }
  }
  throw new CheckpointError(dir, `no weights found: expected one of ${WEIGHT_FILES.join(', ')}`);
}
