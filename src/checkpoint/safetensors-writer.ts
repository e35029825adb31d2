import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DTYPE_BYTES, type TensorDType } from './tensor-info.js';

/** One tensor to write; `bytes()` is called once, in file order, so only one tensor is held at a time. */
export interface TensorToWrite {
  name: string;
  dtype: TensorDType;
  shape: number[];
  bytes: () => Promise<Uint8Array> | Uint8Array;
}

/**
 * Writes a safetensors file tensor by tensor, atomically: into a temporary file beside `path`,
 * flushed to disk, then renamed over it, so a reader sees either no file or a complete one.
 * Tensors are laid out in the given order with no gaps (the format allows none); wider element
 * types first keeps every tensor aligned to its element size, which memory-mapping readers like.
 */
export async function writeSafetensors(path: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): Promise<void> {
  const header: Record<string, unknown> = Object.keys(metadata).length > 0 ? { __metadata__: metadata } : {};
  let offset = 0;
  const lengths: number[] = [];
  for (const t of tensors) {
    const length = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + length] };
    lengths.push(length);
    offset += length;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data section starts 64-byte aligned (8 for the length prefix).
  json += ' '.repeat((64 - ((8 + Buffer.byteLength(json)) % 64)) % 64);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fh = await open(tmp, 'w');
  try {
    await fh.write(prefix);
    await fh.write(headerBytes);
    for (let i = 0; i < tensors.length; i++) {
      const data = await tensors[i].bytes();
      if (data.byteLength !== lengths[i]) throw new Error(`${tensors[i].name}: produced ${data.byteLength} bytes, expected ${lengths[i]}`);
      let written = 0;
      while (written < data.byteLength) written += (await fh.write(data, written, data.byteLength - written)).bytesWritten;
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}
