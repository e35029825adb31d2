import type { FastifyRequest } from 'fastify';
import type { ImageSource } from '../../engine/types.js';
import { malformed, type ApiError } from '../api-error.js';
import type { RequestSummary } from '../context.js';

export const SUMMARY = Symbol('blip-itm request summary');

type WithSummary = FastifyRequest & { [SUMMARY]?: RequestSummary };

/** Records how much work a request carried, for its log line. */
export function setSummary(request: FastifyRequest, images: ImageSource[], texts: string[]): void {
  let imageBytes = 0;
  for (const im of images) if ('bytes' in im) imageBytes += im.bytes.byteLength;
  (request as WithSummary)[SUMMARY] = { images: images.length, texts: texts.length, imageBytes };
}

export function summaryOf(request: FastifyRequest): RequestSummary | undefined {
  return (request as WithSummary)[SUMMARY];
}

export function emptyBody(): ApiError {
  return malformed('the body is empty; expected JSON (Content-Type: application/json) or multipart/form-data');
}

/** The parsed JSON body as an object, or the 400 for an empty one. */
export function jsonBody<T>(body: unknown): T {
  if (body === undefined || body === null || body === '') throw emptyBody();
  if (typeof body !== 'object' || Array.isArray(body)) throw malformed('the body must be a JSON object');
  return body as T;
}
