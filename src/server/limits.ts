import { DEFAULT_MAX_PIXELS } from '../preprocessing/image-decode.js';

/** What one request may ask for; every figure is configurable (see `blip-itm serve --help`). */
export interface ServiceLimits {
  /** Whole request body, JSON or multipart, in bytes. */
  bodyBytes: number;
  /** Pixels per image, checked from the header before decoding (the decoder's limit). */
  imagePixels: number;
  /** Texts (captions, documents, embedding inputs) per request. */
  textsPerRequest: number;
  /** Characters (UTF-16 code units, as JavaScript counts them) per text. */
  charsPerText: number;
  /** Images per request. */
  imagesPerRequest: number;
  /** Milliseconds a request's job may take in the engine before it is answered 504. */
  deadlineMs: number;
}

export const DEFAULT_LIMITS: ServiceLimits = {
  bodyBytes: 20 * 1024 * 1024,
  imagePixels: DEFAULT_MAX_PIXELS,
  textsPerRequest: 256,
  charsPerText: 2000,
  imagesPerRequest: 64,
  deadlineMs: 60_000,
};
