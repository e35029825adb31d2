import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../src/checkpoint/zip.js';

/**
 * Test helpers: a tiny ZIP writer that lays archives out the way torch.save does (local headers
 * padded so entry data is 64-byte aligned, optional ZIP64 end records and extra fields), and a
 * pickle opcode builder for hand-written data.pkl payloads.
 */

export interface ZipInputEntry {
  name: string;
  data: Uint8Array;
  /** 0 = stored (default), 8 = deflate. */
  method?: 0 | 8;
}

export interface ZipWriteOptions {
  /** Pad local headers so every entry's data starts at a multiple of this (torch uses 64). Default 64. */
  align?: number;
  /**
   * Write ZIP64 end-of-central-directory records (as torch always does) and, in the central
   * directory, saturate sizes/offsets to 0xFFFFFFFF with the real values in ZIP64 extra fields.
   */
  zip64?: boolean;
}

export function buildZip(entries: ZipInputEntry[], options: ZipWriteOptions = {}): Buffer {
  const align = options.align ?? 64;
  const parts: Buffer[] = [];
  let pos = 0;
  const central: Buffer[] = [];

  for (const e of entries) {
    const method = e.method ?? 0;
    const name = Buffer.from(e.name, 'utf8');
    const body = method === 8 ? deflateRawSync(e.data) : Buffer.from(e.data);
    const crc = crc32(e.data);
    const headerOffset = pos;

    // Local extra: a padding field ("FB", as torch names it) to align the data.
    let extra = Buffer.alloc(0);
    const bare = headerOffset + 30 + name.length;
    if (align > 1) {
      const pad = (align - ((bare + 4) % align)) % align;
      extra = Buffer.alloc(4 + pad);
      extra.write('FB', 0, 'latin1');
      extra.writeUInt16LE(pad, 2);
      extra.fill(0x5a, 4);
    }
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    parts.push(local, name, extra, body);
    pos += local.length + name.length + extra.length + body.length;

    const cen = Buffer.alloc(46);
    let cenExtra = Buffer.alloc(0);
    cen.writeUInt32LE(0x02014b50, 0);
    cen.writeUInt16LE(0x031e, 4);
    cen.writeUInt16LE(options.zip64 ? 45 : 20, 6);
    cen.writeUInt16LE(0x0800, 8);
    cen.writeUInt16LE(method, 10);
    cen.writeUInt32LE(crc, 16);
    if (options.zip64) {
      cen.writeUInt32LE(0xffffffff, 20);
      cen.writeUInt32LE(0xffffffff, 24);
      cen.writeUInt32LE(0xffffffff, 42);
      cenExtra = Buffer.alloc(4 + 24);
      cenExtra.writeUInt16LE(0x0001, 0);
      cenExtra.writeUInt16LE(24, 2);
      cenExtra.writeBigUInt64LE(BigInt(e.data.length), 4); // uncompressed first
      cenExtra.writeBigUInt64LE(BigInt(body.length), 12);
      cenExtra.writeBigUInt64LE(BigInt(headerOffset), 20);
    } else {
      cen.writeUInt32LE(body.length, 20);
      cen.writeUInt32LE(e.data.length, 24);
      cen.writeUInt32LE(headerOffset, 42);
    }
    cen.writeUInt16LE(name.length, 28);
    cen.writeUInt16LE(cenExtra.length, 30);
    central.push(cen, name, cenExtra);
  }

  const cdOffset = pos;
  const cd = Buffer.concat(central);
  parts.push(cd);
  pos += cd.length;

  if (options.zip64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeUInt16LE(0x031e, 12);
    rec.writeUInt16LE(45, 14);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(pos), 8);
    loc.writeUInt32LE(1, 16);
    parts.push(rec, loc);
    pos += rec.length + loc.length;
  }

  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(options.zip64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(options.zip64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(options.zip64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(options.zip64 ? 0xffffffff : cdOffset, 16);
  parts.push(eocd);
  return Buffer.concat(parts);
}

/** Builds pickle bytes opcode by opcode. Methods return `this` for chaining. */
export class PickleBuilder {
  private readonly chunks: Buffer[] = [];

  raw(...bytes: number[]): this {
    this.chunks.push(Buffer.from(bytes));
    return this;
  }
  proto(n = 2): this { return this.raw(0x80, n); }
  stop(): this { return this.raw(0x2e); }
  mark(): this { return this.raw(0x28); }
  none(): this { return this.raw(0x4e); }
  bool(v: boolean): this { return this.raw(v ? 0x88 : 0x89); }
  emptyTuple(): this { return this.raw(0x29); }
  emptyDict(): this { return this.raw(0x7d); }
  emptyList(): this { return this.raw(0x5d); }
  tuple(): this { return this.raw(0x74); }
  tuple1(): this { return this.raw(0x85); }
  tuple2(): this { return this.raw(0x86); }
  tuple3(): this { return this.raw(0x87); }
  reduce(): this { return this.raw(0x52); }
  build(): this { return this.raw(0x62); }
  binpersid(): this { return this.raw(0x51); }
  setitem(): this { return this.raw(0x73); }
  setitems(): this { return this.raw(0x75); }
  append(): this { return this.raw(0x61); }
  appends(): this { return this.raw(0x65); }
  memoize(): this { return this.raw(0x94); }
  binput(i: number): this { return this.raw(0x71, i); }
  binget(i: number): this { return this.raw(0x68, i); }
  longBinput(i: number): this {
    const b = Buffer.alloc(5);
    b[0] = 0x72;
    b.writeUInt32LE(i, 1);
    this.chunks.push(b);
    return this;
  }
  longBinget(i: number): this {
    const b = Buffer.alloc(5);
    b[0] = 0x6a;
    b.writeUInt32LE(i, 1);
    this.chunks.push(b);
    return this;
  }
  /** GLOBAL: "c<module>\n<name>\n". */
  global(module: string, name: string): this {
    this.chunks.push(Buffer.from(`c${module}\n${name}\n`, 'utf8'));
    return this;
  }
  /** STACK_GLOBAL of two SHORT_BINUNICODE strings. */
  stackGlobal(module: string, name: string): this {
    return this.shortStr(module).shortStr(name).raw(0x93);
  }
  /** BINUNICODE. */
  str(s: string): this {
    const body = Buffer.from(s, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = 0x58;
    head.writeUInt32LE(body.length, 1);
    this.chunks.push(head, body);
    return this;
  }
  shortStr(s: string): this {
    const body = Buffer.from(s, 'utf8');
    this.chunks.push(Buffer.from([0x8c, body.length]), body);
    return this;
  }
  /** The smallest int opcode that holds `n`, as pickle picks it. */
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -0x80000000 && n <= 0x7fffffff) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a;
      b.writeInt32LE(n, 1);
      this.chunks.push(b);
      return this;
    }
    const b = Buffer.alloc(10);
    b[0] = 0x8a;
    b[1] = 8;
    b.writeBigInt64LE(BigInt(n), 2);
    this.chunks.push(b);
    return this;
  }
  intTuple(values: number[]): this {
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}
