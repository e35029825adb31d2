import type { FastifyRequest } from 'fastify';
import type {} from '@fastify/multipart';
import type { ImageSource } from '../engine/types.js';
import { formatBytes } from '../io/files.js';
import { ApiError, malformed } from './api-error.js';
import type { ServiceLimits } from './limits.js';

/**
 * Turns request bodies into what the engine takes, enforcing the limits that JSON Schema cannot
 * state as the API documents them (a schema's maxItems would answer 400; the issue's contract is
 * 422 for too many texts or a text too long, 413 for size).
 */

/** What a multipart body may hold, by field name. */
export interface MultipartSpec {
  /** The file field: every part under this name is an image. */
  files: string;
  /** The text field: repeatable, one text per part. */
  texts: string;
  /** Single-valued scalar fields (e.g. top_n). */
  scalars?: string[];
}

export interface ParsedMultipart {
  images: ImageSource[];
  texts: string[];
  scalars: Record<string, string>;
}

/** Reads a whole multipart body, counting bytes across parts against the body limit. */
export async function readMultipart(request: FastifyRequest, spec: MultipartSpec, limits: ServiceLimits): Promise<ParsedMultipart> {
  const images: ImageSource[] = [];
  const texts: string[] = [];
  const scalars: Record<string, string> = {};
  let total = 0;
  let partCount = 0;
  const tooLarge = () => new ApiError(413, 'body_too_large', `the request body is over the ${formatBytes(limits.bodyBytes)} limit`);
  const parts = request.parts({
    limits: {
      fileSize: limits.bodyBytes,
      files: limits.imagesPerRequest,
      fields: limits.textsPerRequest + (spec.scalars?.length ?? 0),
      // UTF-8 needs at most 4 bytes per UTF-16 code unit (3 for most); past this a text is surely too long.
      fieldSize: limits.charsPerText * 4,
      parts: limits.imagesPerRequest + limits.textsPerRequest + (spec.scalars?.length ?? 0),
    },
  });
  for await (const part of parts) {
    partCount++;
    if (part.type === 'file') {
      if (part.fieldname !== spec.files) {
        part.file.resume();
        throw malformed(`unexpected file part "${part.fieldname}" (images go in "${spec.files}" parts)`);
      }
      const chunks: Buffer[] = [];
      for await (const chunk of part.file as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > limits.bodyBytes) throw tooLarge();
        chunks.push(chunk);
      }
      if (part.file.truncated) throw tooLarge();
      const index = images.length;
      images.push({ bytes: Buffer.concat(chunks), label: part.filename || `#${index}` });
      continue;
    }
    const value = typeof part.value === 'string' ? part.value : String(part.value);
    total += Buffer.byteLength(value) + part.fieldname.length;
    if (total > limits.bodyBytes) throw tooLarge();
    if (part.fieldname === spec.texts) {
      if (part.valueTruncated || value.length > limits.charsPerText) throw textTooLong(spec.texts, texts.length, limits);
      texts.push(value);
    } else if (spec.scalars?.includes(part.fieldname)) {
      if (part.fieldname in scalars) throw malformed(`field "${part.fieldname}" given more than once`);
      scalars[part.fieldname] = value;
    } else if (part.fieldname === spec.files) {
      throw malformed(`"${spec.files}" must be a file part (Content-Disposition with a filename), not a text field`);
    } else {
      throw malformed(`unexpected field "${part.fieldname}" (expected "${spec.files}" files and "${spec.texts}" fields${spec.scalars?.length ? `, ${spec.scalars.map((s) => `"${s}"`).join(', ')}` : ''})`);
    }
  }
  if (partCount === 0) throw malformed(`the multipart body is empty; expected "${spec.files}" file parts and "${spec.texts}" fields`);
  return { images, texts, scalars };
}

function textTooLong(field: string, index: number, limits: ServiceLimits): ApiError {
  return new ApiError(422, 'text_too_long', `${field}[${index}] is over the limit of ${limits.charsPerText} characters per text`);
}

/** The count and length limits on a request's texts; `field` names them in messages. */
export function checkTexts(texts: string[], field: string, limits: ServiceLimits, options: { allowEmpty?: boolean } = {}): void {
  if (texts.length === 0 && !options.allowEmpty) throw new ApiError(422, 'nothing_to_score', `give at least one text in "${field}"`);
  if (texts.length > limits.textsPerRequest) {
    throw new ApiError(422, 'too_many_texts', `${texts.length} texts in "${field}"; the limit is ${limits.textsPerRequest} per request`);
  }
  texts.forEach((t, i) => {
    if (t.length > limits.charsPerText) throw textTooLong(field, i, limits);
    if (t.trim() === '') throw new ApiError(422, 'nothing_to_score', `${field}[${i}] is empty`);
  });
}

export function checkImages(images: ImageSource[], field: string, limits: ServiceLimits): void {
  if (images.length === 0) throw new ApiError(422, 'nothing_to_score', `give at least one image in "${field}"`);
  if (images.length > limits.imagesPerRequest) {
    throw new ApiError(422, 'too_many_images', `${images.length} images in "${field}"; the limit is ${limits.imagesPerRequest} per request`);
  }
  images.forEach((im, i) => {
    if ('bytes' in im && im.bytes.byteLength === 0) throw new ApiError(415, 'not_an_image', `${im.label ?? `${field}[${i}]`}: the image is empty (0 bytes)`);
  });
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;
const DATA_URL = /^data:([^,;]*)(;[^,]*)?,/;

/**
 * Decodes a JSON image: standard or URL-safe base64, optionally as a `data:` URL (what a browser's
 * FileReader gives). Anything else is refused rather than decoded leniently, since Node's decoder
 * silently skips invalid characters and would hand the model garbage. URLs are never fetched.
 */
export function decodeBase64Image(value: string, field: string): Uint8Array {
  let text = value;
  const dataUrl = DATA_URL.exec(text);
  if (dataUrl) {
    if (!/;base64$/i.test(dataUrl[2] ?? '')) throw malformed(`${field}: a data: URL must be base64-encoded (";base64,")`);
    text = text.slice(dataUrl[0].length);
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw malformed(`${field}: looks like a URL; this server never fetches URLs, send the image bytes as base64`);
  }
  text = text.replace(/\s+/g, '');
  if (text.length === 0) throw malformed(`${field}: empty image; expected base64-encoded image bytes`);
  const url = !BASE64.test(text);
  if (url && !BASE64URL.test(text)) throw malformed(`${field}: not valid base64`);
  if (text.length % 4 === 1) throw malformed(`${field}: not valid base64 (truncated)`);
  return Buffer.from(text, url ? 'base64url' : 'base64');
}
