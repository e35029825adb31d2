/**
 * Byte-range reading of one checkpoint file, the seam between the checkpoint readers and a
 * platform: a file handle on Node (./file-byte-source.ts); a Blob, Cache Storage entry or HTTP
 * `Range` reads in the browser (src/web/byte-source.ts).
 */
export interface ByteSource {
  /** Names the file in error messages. */
  readonly label: string;
  size(): Promise<number>;
  /** Exactly `length` bytes at `offset`; reading past the end is an error. */
  read(offset: number, length: number): Promise<Uint8Array>;
}
