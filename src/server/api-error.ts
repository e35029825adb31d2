import { BlipError, ImageError, ImageTooLargeError } from '../errors.js';
import { DeadlineExceededError, EngineClosedError, EngineOverloadedError, JobCancelledError } from '../engine/types.js';
import { FileError } from '../io/files.js';

/**
 * The service's error vocabulary. Every answer that is not a 2xx carries
 * `{"error": {"code", "message"}}`; `code` is stable for programs, `message` is one line for people.
 */
export type ApiErrorCode =
  | 'malformed_body' // 400
  | 'unauthorized' // 401
  | 'not_found' // 404
  | 'method_not_allowed' // 405
  | 'body_too_large' // 413
  | 'image_too_large' // 413
  | 'unsupported_media_type' // 415: a body that is neither JSON nor multipart
  | 'not_an_image' // 415
  | 'too_many_texts' // 422
  | 'too_many_images' // 422
  | 'text_too_long' // 422
  | 'nothing_to_score' // 422
  | 'overloaded' // 503
  | 'not_ready' // 503
  | 'shutting_down' // 503
  | 'deadline_exceeded' // 504
  | 'client_closed' // 499: the caller went away; nobody reads it, but logs and metrics do
  | 'internal_error'; // 500: a bug in blip-itm, never a caller's mistake

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    /** Seconds, for 503s. */
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function malformed(message: string): ApiError {
  return new ApiError(400, 'malformed_body', message);
}

/** Seconds a 503 tells the caller to wait: a full queue drains within a batch or two. */
export const RETRY_AFTER_OVERLOADED_S = 1;
export const RETRY_AFTER_NOT_READY_S = 5;

/** Fastify's and @fastify/multipart's own error codes, for mistakes caught before our handlers run. */
const FRAMEWORK_CODES: Record<string, [number, ApiErrorCode, string?]> = {
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'malformed_body', 'the body is empty; expected a JSON object'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'malformed_body'],
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'body_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type', 'unsupported Content-Type; send application/json or multipart/form-data'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'malformed_body'],
  FST_ERR_CTP_INVALID_TYPE: [400, 'malformed_body'],
  FST_INVALID_MULTIPART_CONTENT_TYPE: [415, 'unsupported_media_type'],
  FST_MP_PREMATURE_CLOSE: [400, 'malformed_body'],
  FST_PROTO_VIOLATION: [400, 'malformed_body'],
  FST_INVALID_JSON_FIELD_ERROR: [400, 'malformed_body'],
  FST_REQ_FILE_TOO_LARGE: [413, 'body_too_large'],
  FST_PARTS_LIMIT: [413, 'body_too_large', 'the multipart body has too many parts'],
  FST_FILES_LIMIT: [422, 'too_many_images'],
  FST_FIELDS_LIMIT: [422, 'too_many_texts'],
};

/** busboy's parse errors ("Malformed part header", "Unexpected end of form") carry no code. */
const BUSBOY_MESSAGE = /^(Malformed|Unexpected end|Multipart: Boundary not found|Unsupported content type|Part terminated early)/i;

/**
 * Maps anything a handler can throw to a status and code. Only errors that are not the caller's
 * (bugs, onnxruntime failures) become 500, and their message is not shown to the caller.
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof EngineOverloadedError) return new ApiError(503, 'overloaded', e.message, RETRY_AFTER_OVERLOADED_S);
  if (e instanceof EngineClosedError) return new ApiError(503, 'shutting_down', 'the server is shutting down; retry on another instance', RETRY_AFTER_NOT_READY_S);
  if (e instanceof DeadlineExceededError) return new ApiError(504, 'deadline_exceeded', e.message);
  if (e instanceof JobCancelledError) return new ApiError(499, 'client_closed', e.message);
  // Too many pixels is a size problem (413); anything else wrong with an image (not one, corrupt, an
  // unsupported format) is 415.
  if (e instanceof ImageTooLargeError) return new ApiError(413, 'image_too_large', oneLine(e.message));
  if (e instanceof ImageError) return new ApiError(415, 'not_an_image', oneLine(e.message));
  if (e instanceof FileError) return new ApiError(415, 'not_an_image', e.message);
  const err = e as { code?: unknown; statusCode?: unknown; message?: unknown; validation?: unknown };
  if (err && typeof err === 'object') {
    if (err.validation !== undefined) return malformed(oneLine(String(err.message)));
    if (typeof err.code === 'string' && err.code in FRAMEWORK_CODES) {
      const [status, code, message] = FRAMEWORK_CODES[err.code];
      return new ApiError(status, code, message ?? oneLine(String(err.message)));
    }
    if (typeof err.message === 'string' && BUSBOY_MESSAGE.test(err.message)) return malformed(`malformed multipart body: ${oneLine(err.message)}`);
    // Any other 4xx raised by the framework (e.g. a bad header) is still the caller's.
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return new ApiError(err.statusCode, err.statusCode === 413 ? 'body_too_large' : 'malformed_body', oneLine(String(err.message)));
    }
  }
  if (e instanceof BlipError) return malformed(oneLine(e.message));
  return new ApiError(500, 'internal_error', 'internal error (logged on the server)');
}

function oneLine(text: string): string {
  const first = text.split('\n')[0].trim();
  return first.length > 300 ? `${first.slice(0, 299)}…` : first;
}
