import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { BlipError, ImageError, ImageTooLargeError } from '../errors.js';
import { JobCancelledError } from './types.js';
import type { PrepareReply, PrepareTask, PrepareWorkerData } from './prepare-worker.js';

/**
 * The worker file beside this module: `.ts` when the engine runs from its sources under tsx
 * (tests), `.js` when it runs from dist/. The worker threads inherit the process's
 * `--import tsx`, so the TypeScript file loads there too.
 */
const WORKER_FILE = fileURLToPath(new URL(`./prepare-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url));

interface Waiting {
  task: PrepareTask;
  transfer: ArrayBuffer[];
  live: () => boolean;
  resolve: (reply: PrepareReply) => void;
  reject: (error: unknown) => void;
}

/**
 * Image reads, hashes and decodes on piscina worker threads. Tasks wait here rather than in
 * piscina's queue, at most one per thread in flight, so that the task of a job cancelled while
 * waiting is dropped before it reaches a worker (piscina can only abort a running task by
 * killing its thread).
 */
export class PreparePool {
  private readonly pool: Piscina<PrepareTask, PrepareReply>;
  private readonly waiting: Waiting[] = [];
  private running = 0;

  constructor(preprocessorConfig: string, private readonly threads: number, private readonly onDecoded?: (seconds: number) => void) {
    const workerData: PrepareWorkerData = { preprocessorConfig };
    this.pool = new Piscina({ filename: WORKER_FILE, minThreads: threads, maxThreads: threads, workerData, idleTimeout: 60_000 });
  }

  /** Reads (a path) and hashes the image; the bytes come back for the decode step. */
  async digest(source: { path: string } | { bytes: Uint8Array }, label: string, live: () => boolean): Promise<{ key: string; bytes: Uint8Array }> {
    // The caller's bytes are copied (only the view, not a larger buffer under it) and the copy
    // moved. Not Buffer#slice: on a Buffer that is a view, and moving it would detach the caller's.
    const own = 'bytes' in source ? new Uint8Array(source.bytes) : undefined;
    const task: PrepareTask = own ? { op: 'digest', bytes: own } : { op: 'digest', path: (source as { path: string }).path };
    const reply = await this.submit(task, own ? [own.buffer as ArrayBuffer] : [], live);
    if (!reply.ok) throw imageError(reply, label);
    if (reply.op !== 'digest') throw new Error('prepare worker answered a digest with a decode');
    return { key: reply.key, bytes: reply.bytes };
  }

  /** Decodes and preprocesses; `bytes` is moved to the worker (unusable here afterwards). */
  async decode(bytes: Uint8Array, label: string, maxPixels: number | undefined, live: () => boolean): Promise<{ pixels: Float32Array; dims: [number, number, number] }> {
    const started = performance.now();
    const transfer = wholeBuffer(bytes) ? [bytes.buffer as ArrayBuffer] : [];
    const reply = await this.submit({ op: 'decode', bytes, label, maxPixels }, transfer, live);
    if (!reply.ok) throw imageError(reply, label);
    if (reply.op !== 'decode') throw new Error('prepare worker answered a decode with a digest');
    this.onDecoded?.((performance.now() - started) / 1000);
    return { pixels: reply.pixels, dims: reply.dims };
  }

  /** Stops the threads; tasks still waiting are refused. */
  async destroy(): Promise<void> {
    for (const w of this.waiting.splice(0)) w.reject(new JobCancelledError());
    await this.pool.destroy();
  }

  private submit(task: PrepareTask, transfer: ArrayBuffer[], live: () => boolean): Promise<PrepareReply> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ task, transfer, live, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.running < this.threads && this.waiting.length > 0) {
      const next = this.waiting.shift()!;
      if (!next.live()) {
        next.reject(new JobCancelledError());
        continue;
      }
      this.running++;
      this.pool.run(next.task, { transferList: next.transfer }).then(next.resolve, next.reject).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }
}

/** A view over its whole ArrayBuffer can be moved; a slice of a larger buffer (a Node Buffer pool) is copied. */
function wholeBuffer(bytes: Uint8Array): boolean {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
}

function imageError(reply: Extract<PrepareReply, { ok: false }>, label: string): BlipError {
  if (reply.reason === 'too-large') return new ImageTooLargeError(label, reply.problem);
  if (reply.reason === 'internal') return new BlipError(`preparing ${label}: ${reply.problem}`);
  return new ImageError(label, reply.problem);
}
