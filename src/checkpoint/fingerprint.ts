import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { openRegularFile } from '../io/files.js';

const CHUNK = 64 * 1024;
const CHUNKS = 16;

/**
 * A content fingerprint of checkpoint weight files that costs about 1 MiB of reads whatever their
 * size: sha256 over each file's byte length and 16 evenly spaced 64 KiB windows (the first holds
 * the safetensors header / zip entries, the last the end of the data); files under 1 MiB are hashed
 * whole. Files are taken in the order of their base names, and their names and dates are not hashed,
 * so a copied, moved, re-downloaded or touched checkpoint keeps its fingerprint, while any two
 * differently trained checkpoints (whose tensors differ everywhere) get different ones.
 */
export async function fingerprintWeights(files: string[]): Promise<{ fingerprint: string; bytes: number }> {
  const sorted = [...new Set(files)].sort((a, b) => (basename(a) < basename(b) ? -1 : basename(a) > basename(b) ? 1 : a < b ? -1 : 1));
  const hash = createHash('sha256');
  let bytes = 0;
  for (const file of sorted) {
    const { handle: fh, size } = await openRegularFile(file, { what: 'a weights file' });
    try {
      bytes += size;
      hash.update(`file ${size}\n`);
      const offsets: number[] = [];
      if (size <= CHUNK * CHUNKS) offsets.push(0);
      else for (let i = 0; i < CHUNKS; i++) offsets.push(Math.floor((i * (size - CHUNK)) / (CHUNKS - 1)));
      const length = size <= CHUNK * CHUNKS ? size : CHUNK;
      const buf = Buffer.alloc(length);
      for (const offset of offsets) {
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        hash.update(buf.subarray(0, got));
      }
    } finally {
      await fh.close();
    }
  }
  return { fingerprint: `sampled-sha256-v1:${hash.digest('hex')}`, bytes };
}

