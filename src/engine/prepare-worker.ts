import { createHash } from 'node:crypto';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { ImageError, ImageTooLargeError } from '../errors.js';
import { FileError, oneLine, readRegularFile } from '../io/files.js';
import { BlipImageProcessor } from '../preprocessing/image-processor.js';

/**
 * The image preparation worker (a piscina thread): reads and hashes an image, or decodes and
 * preprocesses it, so that neither the file read, the sha256, the PIL-exact decode nor the
 * resize runs on the engine's event loop. Two steps, so that an image already in the engine's
 * cache (looked up by the hash on the main thread) is never decoded.
 *
 * Errors come back as values, not throws: piscina would clone a thrown error into a plain
 * Error, losing its class, and the engine needs to tell a too-large image from a broken one.
 */

/** `workerData` of the pool. */
export interface PrepareWorkerData {
  /** The model folder's preprocessor_config.json. */
  preprocessorConfig: string;
}

export type PrepareTask =
  | { op: 'digest'; path: string }
  | { op: 'digest'; bytes: Uint8Array }
  | { op: 'decode'; bytes: Uint8Array; label: string; maxPixels?: number };

/** 'internal': not the image's fault (e.g. a bad preprocessor_config.json); fails the job. */
export type ImageFailure = 'too-large' | 'unreadable' | 'invalid' | 'internal';

export type PrepareReply =
  /** digest: sha256 (hex) of the bytes, and the bytes (moved back, for the decode step). */
  | { ok: true; op: 'digest'; key: string; bytes: Uint8Array }
  /** decode: pixel values [3, H, W], float32, exactly as BlipImageProcessor makes them. */
  | { ok: true; op: 'decode'; pixels: Float32Array; dims: [number, number, number] }
  /** `problem` is the message without the image's name, which the engine adds. */
  | { ok: false; reason: ImageFailure; problem: string };

let processor: Promise<BlipImageProcessor> | undefined;

/** Piscina unwraps the returned value and transfers (moves) the buffers named beside it. */
export default async function prepare(task: PrepareTask): Promise<unknown> {
  let reply: PrepareReply;
  try {
    reply = task.op === 'digest' ? await digest(task) : await decode(task);
  } catch (e) {
    return failure(e);
  }
  const view = reply.ok ? (reply.op === 'digest' ? reply.bytes : reply.pixels) : undefined;
  return view ? move({ [transferableSymbol]: [view.buffer], [valueSymbol]: reply } as never) : reply;
}

async function digest(task: { path: string } | { bytes: Uint8Array }): Promise<PrepareReply> {
  const bytes = 'path' in task ? await readRegularFile(task.path, { kind: 'image', what: 'an image file' }) : task.bytes;
  const key = createHash('sha256').update(bytes).digest('hex');
  return { ok: true, op: 'digest', key, bytes };
}

async function decode(task: { bytes: Uint8Array; label: string; maxPixels?: number }): Promise<PrepareReply> {
  processor ??= BlipImageProcessor.fromFile((workerData as PrepareWorkerData).preprocessorConfig);
  const p = await processor;
  const { data, dims } = await p.preprocess([task.bytes], { maxPixels: task.maxPixels, labels: [task.label] });
  return { ok: true, op: 'decode', pixels: data, dims: [dims[1], dims[2], dims[3]] };
}

function failure(e: unknown): PrepareReply {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof FileError) return { ok: false, reason: 'unreadable', problem: withoutPrefix(message, oneLine(e.file)) };
  if (!(e instanceof ImageError)) return { ok: false, reason: 'internal', problem: message };
  const problem = e.subject === undefined ? message : withoutPrefix(message, e.subject);
  return { ok: false, reason: e instanceof ImageTooLargeError ? 'too-large' : 'invalid', problem: problem.split('\n')[0] };
}

function withoutPrefix(message: string, subject: string): string {
  return message.startsWith(`${subject}: `) ? message.slice(subject.length + 2) : message;
}
