import { writeFileSync } from 'node:fs';

/** Writes a safetensors file from a literal header object (or raw header text) and data bytes. */
export function writeRawSafetensors(path: string, header: unknown, data: Uint8Array = new Uint8Array(0), headerLenOverride?: bigint): void {
  const json = typeof header === 'string' ? header : JSON.stringify(header);
  const headerBytes = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(headerBytes.length));
  writeFileSync(path, Buffer.concat([len, headerBytes, data]));
}
