/**
 * Image bytes to PIL's `convert("RGB")` pixels in the browser. PNG goes through our own decoder
 * (exact, see png-decode.ts). Everything else (JPEG, WebP, GIF...) is decoded by the browser with
 * colour management, EXIF rotation and premultiplication turned off (for JPEG by removing the ICC
 * and EXIF segments, see jpeg-metadata.ts), and read back from a canvas; opaque formats lose
 * nothing to the canvas, and alpha is dropped either way. Chromium's JPEG decoder is
 * libjpeg-turbo, as PIL's is; what still differs is measured in docs/browser.md.
 */
import { ImageError } from '../errors.js';
import { DEFAULT_MAX_PIXELS, type RgbImage } from '../preprocessing/rgb-image.js';
import { isJpeg, jpegSize, stripJpegColourAndOrientation } from './jpeg-metadata.js';
import { decodePng, isPng } from './png-decode.js';

/** Encoded file bytes, a Blob/File, or a URL (string or URL) to fetch. */
export type WebImageInput = Uint8Array | ArrayBuffer | Blob | URL | string;

export interface WebDecodeOptions {
  maxPixels?: number;
  label?: string;
}

export function describeWebInput(input: WebImageInput): string {
  if (typeof input === 'string') return input;
  if (input instanceof URL) return input.href;
  if (typeof File !== 'undefined' && input instanceof File) return input.name;
  if (input instanceof Blob) return `<blob of ${input.size} bytes>`;
  if (input instanceof Uint8Array || input instanceof ArrayBuffer) return `<buffer of ${input.byteLength} bytes>`;
  return `<${typeof input}>`;
}

export async function imageBytes(input: WebImageInput, label: string): Promise<Uint8Array> {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (input instanceof Blob) return new Uint8Array(await input.arrayBuffer());
  if (typeof input === 'string' || input instanceof URL) {
    let res: Response;
    try {
      res = await fetch(input);
    } catch (e) {
      throw new ImageError(label, `cannot fetch image (${(e as Error).message})`, { cause: e });
    }
    if (!res.ok) throw new ImageError(label, `cannot fetch image (HTTP ${res.status})`);
    return new Uint8Array(await res.arrayBuffer());
  }
  throw new ImageError(label, 'expected image file bytes (Uint8Array/ArrayBuffer), a Blob/File, or a URL');
}

export async function decodeWebImage(input: WebImageInput, options: WebDecodeOptions = {}): Promise<RgbImage> {
  const label = options.label ?? describeWebInput(input);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const bytes = await imageBytes(input, label);
  if (bytes.length === 0) throw new ImageError(label, 'image is empty (0 bytes)');
  if (isPng(bytes)) return decodePng(bytes, label, maxPixels);
  if (!isJpeg(bytes)) return decodeWithBrowser(bytes, label, maxPixels);
  const size = jpegSize(bytes);
  if (size) checkPixels(size.width, size.height, label, maxPixels);
  return decodeWithBrowser(stripJpegColourAndOrientation(bytes), label, maxPixels);
}

function checkPixels(width: number, height: number, label: string, maxPixels: number): void {
  if (width * height > maxPixels) {
    throw new ImageError(label, `image is ${width}x${height} = ${width * height} pixels, over the limit of ${maxPixels} (possible decompression bomb)`);
  }
}

async function decodeWithBrowser(bytes: Uint8Array, label: string, maxPixels: number): Promise<RgbImage> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as BlobPart]), {
      premultiplyAlpha: 'none',
      colorSpaceConversion: 'none',
      // PIL does not apply EXIF orientation either.
      imageOrientation: 'none' as ImageOrientation,
    });
  } catch (e) {
    throw new ImageError(label, `not a readable image (${(e as Error).message})`, { cause: e });
  }
  try {
    const { width, height } = bitmap;
    checkPixels(width, height, label, maxPixels);
    const canvas = new OffscreenCanvas(width, height);
    const ctx = canvas.getContext('2d', { colorSpace: 'srgb', willReadFrequently: true });
    if (!ctx) throw new ImageError(label, 'this browser has no 2D canvas to read the decoded pixels from');
    ctx.drawImage(bitmap, 0, 0);
    const rgba = ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' }).data;
    const out = new Uint8Array(width * height * 3);
    for (let i = 0, n = width * height; i < n; i++) {
      out[3 * i] = rgba[4 * i];
      out[3 * i + 1] = rgba[4 * i + 1];
      out[3 * i + 2] = rgba[4 * i + 2];
    }
    return { data: out, width, height };
  } finally {
    bitmap.close();
  }
}
