import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Works around a crash of onnxruntime-node 1.30 on long command lines (docs/known-issues.md):
 * while setting up its process-wide environment (on the first session), libonnxruntime reads
 * /proc/self/cmdline and recurses about three frames per byte of it, so some 29 KB of arguments
 * overflow the main thread's 8 MB stack (SIGSEGV), and half that overflows a worker's 4 MB.
 *
 * The environment is created once per process, whichever thread asks first. So when the command
 * line is long, it is created first in a short-lived worker thread whose stack is sized to the
 * command line; the sessions created afterwards, on any thread, reuse it. Short command lines
 * (nearly every run) skip all this.
 */

/** Below this many bytes of /proc/self/cmdline, a 4 MB worker stack is enough (crash at ~14 KB). */
const SAFE_CMDLINE_BYTES = 8 * 1024;

let ready: Promise<void> | undefined;

/** Bytes of this process's command line as onnxruntime sees it (0 where /proc is missing). */
export function commandLineBytes(): number {
  try {
    return readFileSync('/proc/self/cmdline').length;
  } catch {
    return 0;
  }
}

/** Stack for the environment set-up: measured 8 MB at 29 KB, so 0.4 MB per KB plus headroom. */
export function stackMbFor(cmdlineBytes: number): number {
  return Math.ceil((cmdlineBytes / 1024) * 0.4) + 32;
}

/** Ensures onnxruntime's environment exists before the calling thread creates a session. */
export function ensureOrtEnvironment(): Promise<void> {
  ready ??= initialise();
  return ready;
}

async function initialise(): Promise<void> {
  const bytes = commandLineBytes();
  if (bytes < SAFE_CMDLINE_BYTES) return;
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  // A CommonJS eval worker, so it needs no TypeScript loader under tsx. Creating a session from
  // bytes that are not a model still sets the environment up, then fails harmlessly.
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const ort = require(workerData);
    ort.env.logLevel = 'fatal';
    ort.InferenceSession.create(new Uint8Array([0]), { logSeverityLevel: 4 })
      .catch(() => undefined)
      .finally(() => parentPort.postMessage('ready'));
  `;
  await new Promise<void>((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData: ortPath, resourceLimits: { stackSizeMb: stackMbFor(bytes) } });
    let initialised = false;
    worker.once('message', () => {
      initialised = true;
      resolve();
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (!initialised) reject(new Error(`onnxruntime environment worker exited with code ${code}`));
    });
  });
}
