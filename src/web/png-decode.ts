/**
 * A PNG decoder that gives exactly what PIL 9.4's `Image.open(f).convert("RGB")` holds, for the
 * browser build. Browsers' own decoders cannot be used for PNG: a 2D canvas stores premultiplied
 * alpha (the colour of a transparent pixel is lost, while PIL keeps it), and they scale 16-bit
 * grey to 8 bits where PIL clips it. The zlib stream is inflated by the platform's
 * DecompressionStream; filtering, Adam7 and the conversions are here.
 *
 * PIL's conversions, per IHDR colour type and bit depth:
 *   grey 1 -> 0/255; grey 2/4 -> scaled (x*85, x*17); grey 8 -> as is; grey 16 ("I") -> clipped to 255;
 *   RGB 16, RGBA 16, grey+alpha 16 -> the high byte; palette -> the palette colour;
 *   alpha and tRNS are dropped without compositing.
 * CRCs are not checked (a corrupt chunk shows up as a zlib or size error instead).
 */
import { ImageError } from '../errors.js';
import type { RgbImage } from '../preprocessing/rgb-image.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const VALID_DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
/** Adam7 passes: x0, y0, dx, dy. */
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];

export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && SIGNATURE.every((b, i) => bytes[i] === b);
}

interface Header {
  width: number;
  height: number;
  depth: number;
  colourType: number;
  interlace: number;
}

export async function decodePng(bytes: Uint8Array, label: string, maxPixels: number): Promise<RgbImage> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: Header | undefined;
  let palette: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  for (let pos = 8; pos + 8 <= bytes.length;) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (data.length !== length) throw new ImageError(label, `PNG chunk ${type} is truncated`);
    if (type === 'IHDR') header = readHeader(data, label, maxPixels);
    else if (type === 'PLTE') palette = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + length;
  }
  if (!header) throw new ImageError(label, 'not a readable image (PNG without IHDR)');
  if (idat.length === 0) throw new ImageError(label, 'cannot decode image data, corrupt or truncated? (PNG without IDAT)');
  if (header.colourType === 3 && !palette) throw new ImageError(label, 'palette PNG without a PLTE chunk');
  const raw = await inflate(idat, label);
  const samples = unfilter(raw, header, label);
  return { data: toRgb(samples, header, palette), width: header.width, height: header.height };
}

function readHeader(d: Uint8Array, label: string, maxPixels: number): Header {
  if (d.length < 13) throw new ImageError(label, 'PNG IHDR is truncated');
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const h = { width: v.getUint32(0), height: v.getUint32(4), depth: d[8], colourType: d[9], interlace: d[12] };
  if (h.width < 1 || h.height < 1) throw new ImageError(label, 'image header has no usable width/height');
  if (!VALID_DEPTHS[h.colourType]?.includes(h.depth)) {
    throw new ImageError(label, `PNG colour type ${h.colourType} with bit depth ${h.depth} is not valid`);
  }
  if (h.width * h.height > maxPixels) {
    throw new ImageError(label, `image is ${h.width}x${h.height} = ${h.width * h.height} pixels, over the limit of ${maxPixels} (possible decompression bomb)`);
  }
  return h;
}

async function inflate(chunks: Uint8Array[], label: string): Promise<Uint8Array> {
  const stream = new Blob(chunks as BlobPart[]).stream().pipeThrough(new DecompressionStream('deflate'));
  try {
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new ImageError(label, `cannot decode image data, corrupt or truncated? (${(e as Error).message})`, { cause: e });
  }
}

/** Reverses the per-row filters; returns samples row-major, one byte per sample (16-bit: two, big-endian). */
function unfilter(raw: Uint8Array, h: Header, label: string): Uint8Array {
  const channels = CHANNELS[h.colourType];
  const bitsPerPixel = channels * h.depth;
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const rowBytes = (w: number): number => Math.ceil((w * bitsPerPixel) / 8);
  const fullRow = rowBytes(h.width);
  const out = new Uint8Array(fullRow * h.height);
  const passes = h.interlace === 1 ? ADAM7 : [[0, 0, 1, 1]];
  let pos = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.ceil((h.width - x0) / dx);
    const ph = Math.ceil((h.height - y0) / dy);
    if (pw <= 0 || ph <= 0) continue;
    const rb = rowBytes(pw);
    let prev = new Uint8Array(rb);
    for (let r = 0; r < ph; r++) {
      if (pos + 1 + rb > raw.length) throw new ImageError(label, 'cannot decode image data, corrupt or truncated? (PNG data ends early)');
      const filter = raw[pos];
      const row = raw.slice(pos + 1, pos + 1 + rb);
      pos += 1 + rb;
      unfilterRow(filter, row, prev, bpp, label);
      prev = row;
      if (passes.length === 1) out.set(row, r * fullRow);
      else scatter(row, out, pw, y0 + r * dy, x0, dx, fullRow, bitsPerPixel);
    }
  }
  return out;
}

function unfilterRow(filter: number, row: Uint8Array, prev: Uint8Array, bpp: number, label: string): void {
  const n = row.length;
  switch (filter) {
    case 0: return;
    case 1: for (let i = bpp; i < n; i++) row[i] = (row[i] + row[i - bpp]) & 255; return;
    case 2: for (let i = 0; i < n; i++) row[i] = (row[i] + prev[i]) & 255; return;
    case 3: for (let i = 0; i < n; i++) row[i] = (row[i] + (((i >= bpp ? row[i - bpp] : 0) + prev[i]) >> 1)) & 255; return;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? row[i - bpp] : 0;
        const b = prev[i];
        const c = i >= bpp ? prev[i - bpp] : 0;
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        row[i] = (row[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 255;
      }
      return;
    default: throw new ImageError(label, `cannot decode image data, corrupt or truncated? (PNG filter type ${filter})`);
  }
}

/** Places one Adam7 pass row's pixels into the full image (bit-packed depths included). */
function scatter(row: Uint8Array, out: Uint8Array, pw: number, y: number, x0: number, dx: number, fullRow: number, bits: number): void {
  const base = y * fullRow;
  if (bits >= 8) {
    const b = bits >> 3;
    for (let i = 0; i < pw; i++) out.set(row.subarray(i * b, i * b + b), base + (x0 + i * dx) * b);
    return;
  }
  const mask = (1 << bits) - 1;
  for (let i = 0; i < pw; i++) {
    const v = (row[(i * bits) >> 3] >> (8 - bits - ((i * bits) & 7))) & mask;
    const x = x0 + i * dx;
    const shift = 8 - bits - ((x * bits) & 7);
    out[base + ((x * bits) >> 3)] |= v << shift;
  }
}

function toRgb(s: Uint8Array, h: Header, palette: Uint8Array | undefined): Uint8Array {
  const { width, height, depth, colourType } = h;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const channels = CHANNELS[colourType];
  const rowBytes = Math.ceil((width * channels * depth) / 8);
  if (depth < 8) {
    const mask = (1 << depth) - 1;
    const scale = 255 / mask; // 1 bit: mode "1" gives 0/255; 2 and 4 bits: PIL's L;2 / L;4 unpackers
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const v = (s[y * rowBytes + ((x * depth) >> 3)] >> (8 - depth - ((x * depth) & 7))) & mask;
        const i = y * width + x;
        if (colourType === 3) setPalette(out, i, v, palette!);
        else out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v * scale;
      }
    }
    return out;
  }
  const bytes = depth >> 3;
  const stride = channels * bytes;
  for (let i = 0; i < n; i++) {
    const p = i * stride;
    if (colourType === 3) setPalette(out, i, s[p], palette!);
    else if (colourType === 0 || colourType === 4) {
      // 16-bit grey opens as mode "I" and convert("RGB") clips; grey+alpha 16 unpacks the high byte.
      const g = depth === 16 && colourType === 0 ? Math.min(255, (s[p] << 8) | s[p + 1]) : s[p];
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = g;
    } else {
      for (let c = 0; c < 3; c++) out[3 * i + c] = s[p + c * bytes];
    }
  }
  return out;
}

/** An index past the palette's end reads as black, as PIL's zero-filled palette gives. */
function setPalette(out: Uint8Array, i: number, index: number, palette: Uint8Array): void {
  const p = index * 3;
  out[3 * i] = palette[p] ?? 0;
  out[3 * i + 1] = palette[p + 1] ?? 0;
  out[3 * i + 2] = palette[p + 2] ?? 0;
}
