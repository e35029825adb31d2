import sharp, { type Metadata, type OutputInfo, type SharpOptions } from 'sharp';
import { ImageError, ImageTooLargeError } from '../errors.js';
import { FileError, FILE_LIMITS, oneLine, readRegularFile } from '../io/files.js';
import { DEFAULT_MAX_PIXELS, type DecodeOptions, type RgbImage } from './rgb-image.js';

export { DEFAULT_MAX_PIXELS, type DecodeOptions, type RgbImage } from './rgb-image.js';

/**
 * Image decoding that reproduces PIL's `Image.open(f).convert("RGB")` (Pillow 9.4), which is what the
 * Hugging Face BLIP processor sees. sharp (libvips) does the format decoding; this module undoes the
 * places where libvips and PIL disagree about what the pixels are:
 *
 * - ICC profiles are ignored (`ignoreIcc`), as PIL does not colour-manage.
 * - EXIF orientation is not applied (sharp's default, `autoOrient: false`).
 * - Alpha is dropped without compositing: a fully transparent pixel keeps its stored colour.
 * - Grey (L, LA, 1-bit) is replicated into R, G and B.
 * - 16-bit greyscale PNG: PIL opens it as mode "I" (the raw 0..65535 value) and convert("RGB") clips to
 *   0..255, so anything above 255 becomes white. 16-bit RGB(A) and grey+alpha: PIL keeps the high byte.
 * - CMYK: libvips would convert through an ICC profile; we take the raw ink values and apply PIL's own
 *   formula. (PIL and the libvips bundled with sharp both read every CMYK JPEG as Adobe-inverted,
 *   with or without the APP14 marker, so the ink values already agree.)
 * - Palette tRNS transparency is ignored (libvips expands it to an alpha band, which we drop).
 *
 * Checked bit-exact (sha256 of the RGB pixels) against PIL for every fixture image: baseline and
 * progressive JPEG (libvips' mozjpeg decodes with the same islow IDCT + fancy upsampling as
 * libjpeg-turbo), PNG RGB/RGBA/LA/L/P/P+tRNS/16-bit grey, lossy WebP and Adobe CMYK JPEG.
 * Known, untested divergences: GIF pixels that are transparent in the first frame (PIL gives their
 * palette colour, libvips' GIF loader does not keep it); exotic colour spaces (Lab/float TIFF, YCbCr
 * TIFF variants), which fall back to sharp's own conversion to 8-bit sRGB; AVIF, which Pillow 9.4 cannot
 * open at all.
 */

/** Pixels already decoded: row-major, interleaved. Grey (1), grey+alpha (2) and RGBA (4) are accepted too. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

/** A file path, the bytes of an encoded image, or decoded pixels. */
export type ImageInput = string | Uint8Array | RawImage;

/** Raster formats PIL reads (plus AVIF, via sharp's libheif) that the decoder accepts; sharp's names. */
const DECODABLE_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif']);

/** How an input is named in error messages. */
export function describeInput(input: ImageInput): string {
  if (typeof input === 'string') return input === '' ? '<empty path>' : input;
  if (input instanceof Uint8Array) return `<buffer of ${input.length} bytes>`;
  if (input !== null && typeof input === 'object') {
    return `<raw ${String(input.width)}x${String(input.height)}x${String(input.channels)} pixels>`;
  }
  return `<${typeof input}>`;
}

function isRawImage(input: unknown): input is RawImage {
  return input !== null && typeof input === 'object' && !(input instanceof Uint8Array) && 'data' in input;
}

/** Decodes `input` to RGB uint8 exactly as PIL's `Image.open(f).convert("RGB")` would. */
export async function decodeImage(input: ImageInput, options: DecodeOptions = {}): Promise<RgbImage> {
  const label = options.label ?? describeInput(input);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(maxPixels > 0)) throw new ImageError(label, `maxPixels must be a positive number, got ${String(maxPixels)}`);

  if (isRawImage(input)) return rawToRgb(input, label, maxPixels);

  let bytes: Uint8Array;
  if (typeof input === 'string') {
    // Read the file ourselves: one clear error for missing/unreadable files, and sharp then only ever
    // sees a buffer, so the bytes cannot change between the header check and the decode.
    // The byte cap follows from the pixel limit (nothing decodable under it is larger), so a
    // device such as /dev/zero is refused instead of read until memory runs out.
    try {
      bytes = await readRegularFile(input, { maxBytes: imageByteCap(maxPixels), what: 'an image file' });
    } catch (e) {
      if (e instanceof FileError) throw new ImageError(oneLine(label), e.problem, { cause: e });
      throw e;
    }
  } else if (input instanceof Uint8Array) {
    bytes = input;
  } else {
    throw new ImageError(label, 'expected a file path, a Buffer/Uint8Array of image bytes, or {data, width, height, channels}');
  }
  if (bytes.length === 0) throw new ImageError(label, 'image is empty (0 bytes)');
  return decodeBytes(bytes, label, maxPixels);
}

/** Bytes an encoded image of at most `maxPixels` can take (FILE_LIMITS.image at PIL's limit). */
function imageByteCap(maxPixels: number): number {
  // Without a pixel limit, still stop below Buffer's 4 GB ceiling with a clear message.
  if (!Number.isFinite(maxPixels)) return 2 ** 32 - 1;
  return maxPixels === DEFAULT_MAX_PIXELS ? FILE_LIMITS.image : Math.floor(maxPixels) * 8 + (1 << 20);
}

/** sharp wants a Buffer; wrap a Uint8Array without copying. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function sharpMessage(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].trim();
}

async function decodeBytes(bytes: Uint8Array, label: string, maxPixels: number): Promise<RgbImage> {
  const buf = asBuffer(bytes);
  // 'error' makes truncated or corrupt pixel data fail (PIL raises "image file is truncated") while
  // tolerating benign decoder warnings (e.g. extraneous bytes before a JPEG marker) that PIL also accepts.
  const base: SharpOptions = { failOn: 'error', ignoreIcc: true, autoOrient: false };

  let meta: Metadata;
  try {
    // Header only; sharp's own pixel limit is lifted here because we apply ours just below.
    meta = await sharp(buf, { ...base, limitInputPixels: false }).metadata();
  } catch (e) {
    throw new ImageError(label, `not a readable image (${sharpMessage(e)})`, { cause: e });
  }
  if (!DECODABLE_FORMATS.has(meta.format ?? '')) {
    // e.g. SVG, which libvips would render but PIL cannot open (and which may reference other files).
    throw new ImageError(label, `unsupported image format "${meta.format ?? 'unknown'}" (supported: ${[...DECODABLE_FORMATS].join(', ')})`);
  }
  const { width, height } = meta;
  if (!width || !height) throw new ImageError(label, 'image header has no usable width/height');
  const pixels = width * height;
  if (pixels > maxPixels) {
    throw new ImageTooLargeError(
      label,
      `image is ${width}x${height} = ${pixels} pixels, over the limit of ${maxPixels} (possible decompression bomb)`,
    );
  }

  const space = meta.space ?? '';
  const depth = meta.depth ?? 'uchar';
  const limit = Number.isFinite(maxPixels) ? Math.floor(maxPixels) : false;
  let pipeline = sharp(buf, { ...base, limitInputPixels: limit });
  // Keep libvips from converting colour spaces behind our back: ask for the image's own space.
  let kind: 'rgb' | 'grey' | 'grey16' | 'rgb16' | 'cmyk' | 'cmyk16' | 'other';
  if (space === 'cmyk') {
    kind = depth === 'ushort' ? 'cmyk16' : 'cmyk';
    pipeline = pipeline.pipelineColourspace('cmyk').toColourspace('cmyk');
  } else if (depth === 'ushort' && space === 'grey16') {
    kind = 'grey16';
    pipeline = pipeline.toColourspace('grey16');
  } else if (depth === 'ushort' && space === 'rgb16') {
    kind = 'rgb16';
    pipeline = pipeline.toColourspace('rgb16');
  } else if (depth === 'uchar' && space === 'b-w') {
    kind = 'grey';
    pipeline = pipeline.toColourspace('b-w');
  } else if (depth === 'uchar' && space === 'srgb') {
    kind = 'rgb';
  } else {
    // Exotic (Lab, float, 32-bit...): let libvips convert to 8-bit sRGB. Not verified against PIL.
    kind = 'other';
    pipeline = pipeline.toColourspace('srgb');
  }
  const wide = kind === 'grey16' || kind === 'rgb16' || kind === 'cmyk16';

  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await pipeline.raw({ depth: wide ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw new ImageError(label, `cannot decode image data, corrupt or truncated? (${sharpMessage(e)})`, { cause: e });
  }
  if (info.width !== width || info.height !== height) {
    throw new ImageError(label, `decoder returned ${info.width}x${info.height} pixels, header said ${width}x${height}`);
  }

  const c = info.channels;
  const out = new Uint8Array(pixels * 3);
  if (wide) {
    // Raw output is host-endian (little-endian on every platform Node supports for sharp).
    // (A Uint16Array view needs an even byte offset; copy in the unlikely case sharp's buffer has none.)
    const words = data.byteOffset % 2 === 0 ? data : new Uint8Array(data);
    const src = new Uint16Array(words.buffer, words.byteOffset, words.length >> 1);
    if (src.length !== pixels * c) throw new ImageError(label, 'decoder returned an unexpected amount of data');
    if (kind === 'grey16') {
      // A second band is either real alpha (PNG colour type 4: PIL unpacks "LA;16B", keeping the high
      // byte) or libvips' expansion of a tRNS colour key (PIL keeps mode "I", so the value is clipped).
      if (c === 1 || !(meta.format === 'png' && pngColourType(bytes) === 4)) {
        // PIL mode "I" (or "I;16"): convert("RGB") clips the 16-bit value to 0..255.
        for (let i = 0; i < pixels; i++) {
          const g = src[i * c];
          const v = g > 255 ? 255 : g;
          out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v;
        }
      } else {
        for (let i = 0; i < pixels; i++) {
          const v = src[i * c] >> 8;
          out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = v;
        }
      }
    } else if (kind === 'rgb16') {
      for (let i = 0; i < pixels; i++) {
        out[3 * i] = src[i * c] >> 8;
        out[3 * i + 1] = src[i * c + 1] >> 8;
        out[3 * i + 2] = src[i * c + 2] >> 8;
      }
    } else {
      const ink = new Uint8Array(pixels * 4);
      for (let i = 0; i < pixels; i++) for (let j = 0; j < 4; j++) ink[4 * i + j] = src[i * c + j] >> 8;
      cmykToRgb(ink, 4, out, pixels);
    }
  } else if (kind === 'cmyk') {
    if (c < 4 || data.length !== pixels * c) throw new ImageError(label, 'decoder returned an unexpected amount of data');
    cmykToRgb(data, c, out, pixels);
  } else {
    if (data.length !== pixels * c) throw new ImageError(label, 'decoder returned an unexpected amount of data');
    copyToRgb(data, c, out, pixels);
  }
  return { data: out, width, height };
}

/** Interleaved 1..4-channel uint8 to RGB: grey replicated, alpha dropped without compositing. */
function copyToRgb(src: Uint8Array, c: number, out: Uint8Array, pixels: number): void {
  if (c === 3) {
    out.set(src.subarray(0, pixels * 3));
  } else if (c >= 3) {
    for (let i = 0; i < pixels; i++) {
      out[3 * i] = src[i * c];
      out[3 * i + 1] = src[i * c + 1];
      out[3 * i + 2] = src[i * c + 2];
    }
  } else {
    for (let i = 0; i < pixels; i++) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = src[i * c];
  }
}

/**
 * Pillow's cmyk2rgb (Convert.c): nk = 255 - K; channel = clip(nk - MULDIV255(ink, nk)), where
 * MULDIV255(a, b) = (t = a*b + 128, ((t >> 8) + t) >> 8). No ICC, no undercolour handling.
 */
function cmykToRgb(src: Uint8Array, c: number, out: Uint8Array, pixels: number): void {
  for (let i = 0; i < pixels; i++) {
    const s = i * c;
    const nk = 255 - src[s + 3];
    for (let j = 0; j < 3; j++) {
      const t = src[s + j] * nk + 128;
      out[3 * i + j] = nk - (((t >> 8) + t) >> 8); // never negative: MULDIV255(ink, nk) <= nk
    }
  }
}

/** The IHDR colour type of a PNG (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA), or -1. */
function pngColourType(png: Uint8Array): number {
  const ihdr = png.length > 25 && png[12] === 0x49 && png[13] === 0x48 && png[14] === 0x44 && png[15] === 0x52;
  return ihdr ? png[25] : -1;
}

function rawToRgb(raw: RawImage, label: string, maxPixels: number): RgbImage {
  const { data, width, height, channels } = raw;
  if (!(data instanceof Uint8Array)) throw new ImageError(label, 'raw pixel data must be a Uint8Array');
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
    throw new ImageError(label, `raw image width and height must be positive integers, got ${String(width)}x${String(height)}`);
  }
  if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
    throw new ImageError(label, `raw image channels must be 1, 2, 3 or 4, got ${String(channels)}`);
  }
  const pixels = width * height;
  if (pixels > maxPixels) {
    throw new ImageTooLargeError(label, `image is ${width}x${height} = ${pixels} pixels, over the limit of ${maxPixels}`);
  }
  if (data.length !== pixels * channels) {
    throw new ImageError(label, `raw image data has ${data.length} bytes, expected ${width}x${height}x${channels} = ${pixels * channels}`);
  }
  if (channels === 3) return { data, width, height };
  const out = new Uint8Array(pixels * 3);
  copyToRgb(data, channels, out, pixels);
  return { data: out, width, height };
}
