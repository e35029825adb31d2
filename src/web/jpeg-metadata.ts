/**
 * PIL decodes a JPEG's samples and ignores its metadata: no ICC colour conversion, no EXIF
 * rotation. Chromium applies both even with createImageBitmap's `colorSpaceConversion: 'none'` and
 * `imageOrientation: 'none'` (measured: an ICC-tagged JPEG moved by up to 55 levels, an EXIF
 * orientation 6 image came back rotated), so the segments are removed before the browser decodes.
 */

const SOI = 0xd8;
const SOS = 0xda;
const APP1 = 0xe1;
const APP2 = 0xe2;

export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length > 3 && bytes[0] === 0xff && bytes[1] === SOI && bytes[2] === 0xff;
}

const startsWith = (bytes: Uint8Array, at: number, ascii: string): boolean =>
  [...ascii].every((ch, i) => bytes[at + i] === ch.charCodeAt(0));

/** The JPEG without its EXIF (APP1 "Exif") and ICC (APP2 "ICC_PROFILE") segments; other bytes unchanged. */
export function stripJpegColourAndOrientation(bytes: Uint8Array): Uint8Array {
  const keep: Uint8Array[] = [bytes.subarray(0, 2)];
  let pos = 2;
  let removed = false;
  while (pos + 4 <= bytes.length && bytes[pos] === 0xff) {
    const marker = bytes[pos + 1];
    if (marker === 0xff) { // fill byte
      pos++;
      continue;
    }
    if (marker === SOS) break;
    const end = pos + 2 + ((bytes[pos + 2] << 8) | bytes[pos + 3]);
    const drop = (marker === APP1 && startsWith(bytes, pos + 4, 'Exif\0')) || (marker === APP2 && startsWith(bytes, pos + 4, 'ICC_PROFILE\0'));
    if (drop) removed = true;
    else keep.push(bytes.subarray(pos, end));
    pos = end;
  }
  if (!removed) return bytes;
  keep.push(bytes.subarray(pos));
  const out = new Uint8Array(keep.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of keep) {
    out.set(b, at);
    at += b.length;
  }
  return out;
}

/** Width and height from the first SOFn segment, read before decoding (decompression-bomb guard). */
export function jpegSize(bytes: Uint8Array): { width: number; height: number } | undefined {
  let pos = 2;
  while (pos + 9 <= bytes.length && bytes[pos] === 0xff) {
    const marker = bytes[pos + 1];
    if (marker === 0xff) {
      pos++;
      continue;
    }
    if (marker === SOS) return undefined;
    // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: (bytes[pos + 5] << 8) | bytes[pos + 6], width: (bytes[pos + 7] << 8) | bytes[pos + 8] };
    }
    pos += 2 + ((bytes[pos + 2] << 8) | bytes[pos + 3]);
  }
  return undefined;
}
