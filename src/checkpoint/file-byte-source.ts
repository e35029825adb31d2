import type { FileHandle } from 'node:fs/promises';
import { CheckpointError } from '../errors.js';
import type { ByteSource } from './byte-source.js';
import { openCheckpointFile } from './checkpoint-file.js';

/** A checkpoint file on disk as a ByteSource (Node); close() when done. */
export class FileByteSource implements ByteSource {
  private constructor(readonly label: string, private readonly handle: FileHandle, private readonly bytes: number) {}

  /** Opens `file` with io/files' checks (see openCheckpointFile); `what` names it in errors. */
  static async open(file: string, what: string): Promise<FileByteSource> {
    const { handle, size } = await openCheckpointFile(file, what);
    return new FileByteSource(file, handle, size);
  }

  async size(): Promise<number> {
    return this.bytes;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    // Own, aligned buffer so typed views over it are always legal.
    const out = new Uint8Array(new ArrayBuffer(length));
    const { bytesRead } = await this.handle.read(out, 0, length, offset);
    if (bytesRead !== length) throw new CheckpointError(this.label, `read of ${length} bytes at ${offset} runs past the end of the ${this.bytes}-byte file`);
    return out;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
