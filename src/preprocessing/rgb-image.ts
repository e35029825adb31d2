/**
 * Decoded images as the image processor takes them, whichever platform decoded them (sharp on
 * Node, src/web/image-decode.ts in the browser).
 */

/** An 8-bit RGB image, H x W x 3 interleaved (what PIL's `np.asarray(im.convert("RGB"))` holds). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** PIL's Image.MAX_IMAGE_PIXELS (1024 * 1024 * 1024 // 4 // 3). */
export const DEFAULT_MAX_PIXELS = 89_478_485;

export interface DecodeOptions {
  /**
   * Refuse images with more pixels than this (decompression-bomb guard), checked from the header before
   * any pixel is decoded. Default {@link DEFAULT_MAX_PIXELS}. `Infinity` disables the check. (PIL only
   * warns between 1x and 2x this figure and refuses above 2x; we refuse above 1x.)
   */
  maxPixels?: number;
  /** Name used for the input in error messages; default: the path, or "<buffer of N bytes>". */
  label?: string;
}

/** Decodes one input of a platform's kind to RGB, as PIL's `convert("RGB")` would. */
export type ImageDecoder<I> = (input: I, options: DecodeOptions) => Promise<RgbImage>;
