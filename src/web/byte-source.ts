/**
 * Byte-range reading of one checkpoint file in the browser (the ByteSource seam of
 * src/checkpoint/byte-source.ts; on Node a file handle): a Blob or File (what Cache Storage and
 * <input type=file> give, disk-backed, so a slice reads only its bytes), or an HTTP URL read with
 * `Range` requests.
 */
import type { ByteSource } from '../checkpoint/byte-source.js';
import { CheckpointError } from '../errors.js';

export type { ByteSource };

export class BlobSource implements ByteSource {
  constructor(private readonly blob: Blob, readonly label: string) {}

  async size(): Promise<number> {
    return this.blob.size;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset + length > this.blob.size) {
      throw new CheckpointError(this.label, `read of ${length} bytes at ${offset} runs past the end of the ${this.blob.size}-byte file`);
    }
    return new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
  }
}

/** HTTP `Range` reads; the server must answer 206 (a 200 would send the whole file each time). */
export class HttpRangeSource implements ByteSource {
  private knownSize: number | undefined;

  constructor(readonly url: string, readonly init: RequestInit = {}) {}

  get label(): string {
    return this.url;
  }

  async size(): Promise<number> {
    if (this.knownSize === undefined) {
      const res = await this.fetchRange(0, 1);
      const total = /\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1];
      if (total === undefined) throw new CheckpointError(this.url, 'the server gave no Content-Range total; cannot read byte ranges');
      this.knownSize = Number(total);
      await res.body?.cancel();
    }
    return this.knownSize;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    const res = await this.fetchRange(offset, length);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length !== length) throw new CheckpointError(this.url, `asked for ${length} bytes at ${offset}, got ${bytes.length}`);
    return bytes;
  }

  private async fetchRange(offset: number, length: number): Promise<Response> {
    const headers = new Headers(this.init.headers);
    headers.set('Range', `bytes=${offset}-${offset + length - 1}`);
    let res: Response;
    try {
      res = await fetch(this.url, { ...this.init, headers });
    } catch (e) {
      throw new CheckpointError(this.url, `cannot fetch (${(e as Error).message})`, { cause: e });
    }
    if (res.status !== 206) {
      await res.body?.cancel();
      throw new CheckpointError(this.url, `expected a 206 partial response to a Range request, got HTTP ${res.status}`);
    }
    return res;
  }
}
