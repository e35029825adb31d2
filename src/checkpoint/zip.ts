import type { FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { CheckpointError } from '../errors.js';
import { openCheckpointFile } from './checkpoint-file.js';

/**
 * A minimal, read-only ZIP reader: just enough for PyTorch's `torch.save` archives (PyTorch ≥ 1.6,
 * written by miniz with ZIP64 records). It reads the central directory and every entry's local
 * header so it can tell the absolute byte offset of each entry's data; entry bytes themselves are
 * only read on request (`readEntry`, meant for small records such as `data.pkl`).
 *
 * Every length and offset taken from the file is checked against the file size before it is
 * used, and nothing is allocated from an unchecked field.
 */

export const ZIP_STORED = 0;
export const ZIP_DEFLATED = 8;

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_MIN_SIZE = 56;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const MAX_COMMENT = 0xffff;

/** A central directory larger than this is not a checkpoint we know (real ones are a few hundred KB). */
export const MAX_CENTRAL_DIRECTORY_BYTES = 64 * 1024 * 1024;
/** Default cap for `readEntry` (data.pkl of a multi-GB checkpoint is well under 1 MB). */
export const DEFAULT_MAX_ENTRY_BYTES = 100_000_000;

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate; anything else is reported but cannot be read. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  /** Absolute offset of the entry's local file header. */
  localHeaderOffset: number;
  /** Absolute offset of the entry's first data byte (after the LOCAL header's name and extra field). */
  dataOffset: number;
}

export class ZipArchive {
  private constructor(
    /** Absolute path of the archive. */
    readonly path: string,
    readonly size: number,
    /** Entries by name, in central-directory order. */
    readonly entries: ReadonlyMap<string, ZipEntry>,
    private readonly handle: FileHandle,
  ) {}

  /** Opens `path` and reads its directory. Call `close()` when done. */
  static async open(path: string): Promise<ZipArchive> {
    const file = resolve(path);
    // A FIFO or a folder named pytorch_model.bin is refused here, before anything blocks.
    const { handle, size } = await openCheckpointFile(file, 'a PyTorch checkpoint (ZIP archive)');
    try {
      const entries = await readDirectory(file, handle, size);
      return new ZipArchive(file, size, entries, handle);
    } catch (e) {
      await handle.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /**
   * Reads and (for deflate) inflates one entry, checking its size and CRC-32. Refuses entries
   * larger than `maxBytes` before allocating anything.
   */
  async readEntry(entry: ZipEntry, maxBytes = DEFAULT_MAX_ENTRY_BYTES): Promise<Buffer> {
    const what = `zip entry ${JSON.stringify(entry.name)}`;
    if (entry.uncompressedSize > maxBytes || entry.compressedSize > maxBytes) {
      throw new CheckpointError(this.path, `${what} is ${Math.max(entry.uncompressedSize, entry.compressedSize)} bytes, over the ${maxBytes}-byte limit for this record`);
    }
    if (entry.method !== ZIP_STORED && entry.method !== ZIP_DEFLATED) {
      throw new CheckpointError(this.path, `${what} uses compression method ${entry.method}; only stored (0) and deflate (8) can be read`);
    }
    const raw = await readExact(this.path, this.handle, entry.dataOffset, entry.compressedSize, what);
    let data: Buffer;
    if (entry.method === ZIP_STORED) {
      if (entry.compressedSize !== entry.uncompressedSize) {
        throw new CheckpointError(this.path, `${what} is stored but its compressed size ${entry.compressedSize} differs from its size ${entry.uncompressedSize}`);
      }
      data = raw;
    } else {
      try {
        // maxOutputLength keeps a deflate bomb from growing past the declared size (+1 to notice).
        data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize + 1) });
      } catch (e) {
        throw new CheckpointError(this.path, `${what}: deflate data is corrupt (${(e as Error).message})`, { cause: e });
      }
      if (data.length !== entry.uncompressedSize) {
        throw new CheckpointError(this.path, `${what} inflates to ${data.length} bytes but the directory says ${entry.uncompressedSize}`);
      }
    }
    const crc = crc32(data);
    if (crc !== entry.crc32) {
      throw new CheckpointError(this.path, `${what} fails its CRC-32 check (file corrupt?)`);
    }
    return data;
  }
}

async function readExact(file: string, handle: FileHandle, position: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buf, done, length - done, position + done);
    if (bytesRead === 0) throw new CheckpointError(file, `${what}: unexpected end of file at byte ${position + done} (truncated?)`);
    done += bytesRead;
  }
  return buf;
}

function u64(file: string, buf: Buffer, at: number, what: string): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(file, `${what} ${v} is out of range`);
  return Number(v);
}

function notZip(file: string, size: number, detail: string): CheckpointError {
  return new CheckpointError(file, `not a ZIP archive (${detail}; ${size}-byte file) — expected a PyTorch ≥ 1.6 checkpoint saved by torch.save`);
}

interface DirectoryLocation {
  entryCount: number;
  cdOffset: number;
  cdSize: number;
}

async function findDirectory(file: string, handle: FileHandle, size: number): Promise<DirectoryLocation> {
  if (size < EOCD_SIZE) throw notZip(file, size, 'too short to hold an end of central directory record');
  const tailLen = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = size - tailLen;
  const tail = await readExact(file, handle, tailStart, tailLen, 'end of central directory');

  // The EOCD record is the last thing in the file: scan backwards for a signature whose comment
  // length ends exactly at end of file.
  let eocd = -1;
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && i + EOCD_SIZE + tail.readUInt16LE(i + 20) === tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    const head = await readExact(file, handle, 0, Math.min(size, 4), 'file header');
    // Legacy torch.save files start with a protocol-2 pickle of a LONG1 magic number.
    if (head.length >= 3 && head[0] === 0x80 && head[1] === 0x02 && head[2] === 0x8a) throw legacyFormat(file);
    if (head.length >= 4 && head.readUInt32LE(0) === SIG_LOCAL) {
      throw new CheckpointError(file, `ZIP archive has no end of central directory record (truncated? ${size}-byte file)`);
    }
    throw notZip(file, size, 'no end of central directory record');
  }

  const diskNo = tail.readUInt16LE(eocd + 4);
  const cdDisk = tail.readUInt16LE(eocd + 6);
  const entriesHere = tail.readUInt16LE(eocd + 8);
  let entryCount = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  const eocdAbs = tailStart + eocd;

  // ZIP64: a locator right before the EOCD points at the ZIP64 EOCD record, whose 64-bit fields
  // replace the 16/32-bit ones (torch always writes one).
  const locAbs = eocdAbs - ZIP64_LOCATOR_SIZE;
  let zip64 = false;
  if (locAbs >= 0) {
    const loc = await readExact(file, handle, locAbs, ZIP64_LOCATOR_SIZE, 'ZIP64 locator');
    if (loc.readUInt32LE(0) === SIG_ZIP64_LOCATOR) {
      zip64 = true;
      const recDisk = loc.readUInt32LE(4);
      const recOffset = u64(file, loc, 8, 'ZIP64 end of central directory offset');
      const disks = loc.readUInt32LE(16);
      if (recDisk !== 0 || disks > 1) throw new CheckpointError(file, 'multi-disk (spanned) ZIP archives are not supported');
      if (recOffset + ZIP64_EOCD_MIN_SIZE > locAbs) {
        throw new CheckpointError(file, `ZIP64 end of central directory offset ${recOffset} is out of range (truncated or corrupt archive)`);
      }
      const rec = await readExact(file, handle, recOffset, ZIP64_EOCD_MIN_SIZE, 'ZIP64 end of central directory');
      if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) {
        throw new CheckpointError(file, `no ZIP64 end of central directory record at byte ${recOffset} (corrupt archive)`);
      }
      if (rec.readUInt32LE(16) !== 0 || rec.readUInt32LE(20) !== 0) {
        throw new CheckpointError(file, 'multi-disk (spanned) ZIP archives are not supported');
      }
      const here64 = u64(file, rec, 24, 'ZIP64 entry count');
      entryCount = u64(file, rec, 32, 'ZIP64 entry count');
      cdSize = u64(file, rec, 40, 'ZIP64 central directory size');
      cdOffset = u64(file, rec, 48, 'ZIP64 central directory offset');
      if (here64 !== entryCount) throw new CheckpointError(file, 'multi-disk (spanned) ZIP archives are not supported');
      if (cdOffset + cdSize > recOffset) {
        throw new CheckpointError(file, `central directory [${cdOffset}, ${cdOffset + cdSize}) overlaps the ZIP64 end record at ${recOffset} (corrupt archive)`);
      }
    }
  }
  if (!zip64) {
    if (diskNo !== 0 || cdDisk !== 0 || entriesHere !== entryCount) {
      throw new CheckpointError(file, 'multi-disk (spanned) ZIP archives are not supported');
    }
    if (entryCount === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      throw new CheckpointError(file, 'ZIP64 archive without a ZIP64 end of central directory locator (corrupt archive)');
    }
    if (cdOffset + cdSize > eocdAbs) {
      throw new CheckpointError(file, `central directory [${cdOffset}, ${cdOffset + cdSize}) runs past its end record at byte ${eocdAbs} (truncated or corrupt archive)`);
    }
  }
  if (cdSize > MAX_CENTRAL_DIRECTORY_BYTES) {
    throw new CheckpointError(file, `central directory is ${cdSize} bytes, over the ${MAX_CENTRAL_DIRECTORY_BYTES}-byte limit`);
  }
  if (entryCount * CENTRAL_SIZE > cdSize) {
    throw new CheckpointError(file, `central directory of ${cdSize} bytes cannot hold the ${entryCount} entries it claims (corrupt archive)`);
  }
  return { entryCount, cdOffset, cdSize };
}

function legacyFormat(file: string): CheckpointError {
  return new CheckpointError(
    file,
    'legacy (pre-1.6, non-ZIP) torch.save checkpoint, which is not supported; re-save it with torch ≥ 1.6 or convert it to safetensors',
  );
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = new TextDecoder('latin1');

async function readDirectory(file: string, handle: FileHandle, size: number): Promise<Map<string, ZipEntry>> {
  const { entryCount, cdOffset, cdSize } = await findDirectory(file, handle, size);
  const cd = await readExact(file, handle, cdOffset, cdSize, 'central directory');
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < entryCount; i++) {
    const where = `central directory entry ${i}`;
    if (p + CENTRAL_SIZE > cd.length) throw new CheckpointError(file, `${where} runs past the central directory (corrupt archive)`);
    if (cd.readUInt32LE(p) !== SIG_CENTRAL) throw new CheckpointError(file, `${where}: bad signature at byte ${cdOffset + p} (corrupt archive)`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc = cd.readUInt32LE(p + 16);
    let compressedSize = cd.readUInt32LE(p + 20);
    let uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let diskStart = cd.readUInt16LE(p + 34);
    let localHeaderOffset = cd.readUInt32LE(p + 42);
    const end = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
    if (end > cd.length) throw new CheckpointError(file, `${where} runs past the central directory (corrupt archive)`);
    const nameBytes = cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen);
    const name = decodeName(file, nameBytes, flags, where);
    const extra = cd.subarray(p + CENTRAL_SIZE + nameLen, p + CENTRAL_SIZE + nameLen + extraLen);

    // ZIP64 extended information: only the fields saturated in the fixed header are present, in this order.
    const needU = uncompressedSize === 0xffffffff;
    const needC = compressedSize === 0xffffffff;
    const needO = localHeaderOffset === 0xffffffff;
    const needD = diskStart === 0xffff;
    if (needU || needC || needO || needD) {
      const z = findExtra(extra, 0x0001);
      const want = (needU ? 8 : 0) + (needC ? 8 : 0) + (needO ? 8 : 0) + (needD ? 4 : 0);
      if (!z || z.length < want) throw new CheckpointError(file, `zip entry ${JSON.stringify(name)}: missing or short ZIP64 extra field (corrupt archive)`);
      let q = 0;
      if (needU) { uncompressedSize = u64(file, z, q, `zip entry ${JSON.stringify(name)} size`); q += 8; }
      if (needC) { compressedSize = u64(file, z, q, `zip entry ${JSON.stringify(name)} compressed size`); q += 8; }
      if (needO) { localHeaderOffset = u64(file, z, q, `zip entry ${JSON.stringify(name)} offset`); q += 8; }
      if (needD) { diskStart = z.readUInt32LE(q); }
    }
    if (diskStart !== 0) throw new CheckpointError(file, 'multi-disk (spanned) ZIP archives are not supported');
    if (flags & 0x0001) throw new CheckpointError(file, `zip entry ${JSON.stringify(name)} is encrypted, which is not supported`);
    if (entries.has(name)) throw new CheckpointError(file, `zip entry ${JSON.stringify(name)} appears twice (ambiguous archive)`);
    if (localHeaderOffset + LOCAL_SIZE > cdOffset) {
      throw new CheckpointError(file, `zip entry ${JSON.stringify(name)}: local header offset ${localHeaderOffset} is out of range (corrupt archive)`);
    }
    entries.set(name, {
      name, method, flags, crc32: crc, compressedSize, uncompressedSize, localHeaderOffset, dataOffset: -1,
    });
    p = end;
  }

  // The local header's name and extra field lengths may differ from the central ones (torch pads
  // the local extra field so data is 64-byte aligned), so the data offset comes from the local header.
  for (const entry of entries.values()) {
    const what = `zip entry ${JSON.stringify(entry.name)}`;
    const lh = await readExact(file, handle, entry.localHeaderOffset, LOCAL_SIZE, what);
    if (lh.readUInt32LE(0) !== SIG_LOCAL) {
      throw new CheckpointError(file, `${what}: no local file header at byte ${entry.localHeaderOffset} (corrupt archive)`);
    }
    const nameLen = lh.readUInt16LE(26);
    const extraLen = lh.readUInt16LE(28);
    const nameAt = entry.localHeaderOffset + LOCAL_SIZE;
    const dataOffset = nameAt + nameLen + extraLen;
    if (dataOffset > cdOffset) throw new CheckpointError(file, `${what}: local header runs past the entry data area (corrupt archive)`);
    const localName = await readExact(file, handle, nameAt, nameLen, what);
    if (decodeNameLoose(localName) !== entry.name && latin1.decode(localName) !== entry.name) {
      throw new CheckpointError(file, `${what}: local header names it ${JSON.stringify(decodeNameLoose(localName))} (corrupt archive)`);
    }
    if (dataOffset + entry.compressedSize > cdOffset) {
      throw new CheckpointError(
        file,
        `${what}: data [${dataOffset}, ${dataOffset + entry.compressedSize}) runs past the entry data area, which ends at byte ${cdOffset} (truncated or corrupt archive)`,
      );
    }
    entry.dataOffset = dataOffset;
  }
  return entries;
}

function decodeName(file: string, bytes: Uint8Array, flags: number, where: string): string {
  if (flags & 0x0800) {
    try {
      return utf8.decode(bytes);
    } catch {
      throw new CheckpointError(file, `${where}: file name is not valid UTF-8 (corrupt archive)`);
    }
  }
  // Without the UTF-8 flag names are CP437; the names we look up are ASCII, so latin1 is enough.
  return latin1.decode(bytes);
}

function decodeNameLoose(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return latin1.decode(bytes);
  }
}

function findExtra(extra: Buffer, id: number): Buffer | undefined {
  let q = 0;
  while (q + 4 <= extra.length) {
    const hid = extra.readUInt16LE(q);
    const len = extra.readUInt16LE(q + 2);
    if (q + 4 + len > extra.length) return undefined;
    if (hid === id) return extra.subarray(q + 4, q + 4 + len);
    q += 4 + len;
  }
  return undefined;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (ISO-HDLC, as ZIP uses it) of `data`. */
export function crc32(data: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
