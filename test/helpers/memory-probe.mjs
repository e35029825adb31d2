// Preloaded into the filter CLI by the memory test (`--expose-gc --import <this file>`, with an IPC
// channel): on each message from the test it runs a full garbage collection and answers with what
// is still held. A full collection frees only garbage, never anything reachable, so memory retained
// per row or unit shows in these figures, while V8's lazy collection (promoted garbage piling up in
// old space until the next mark-compact, tens of MiB over thousands of rows) does not.
// Plain JavaScript: piscina's worker threads inherit the preload before tsx can load TypeScript.
import { readFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

function statusMb(status, field) {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  if (!m) throw new Error(`/proc/self/status has no ${field}`);
  return Number(m[1]) / 1024;
}

// Only the CLI's own thread answers (the workers inherit the preload, not the channel).
if (isMainThread && process.channel) {
  if (typeof globalThis.gc !== 'function') throw new Error('memory-probe.mjs needs node --expose-gc');
  process.on('message', () => {
    globalThis.gc();
    const status = readFileSync('/proc/self/status', 'utf8');
    const { heapUsed, external } = process.memoryUsage();
    // rss, hwm: VmRSS and VmHWM; js: the live V8 heap plus the memory V8 tracks outside it (Buffers, ArrayBuffers); all MiB.
    const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1]);
    process.send({ rss: statusMb(status, 'VmRSS'), hwm: statusMb(status, 'VmHWM'), js: (heapUsed + external) / 2 ** 20, threads });
  });
  // The channel must not keep the CLI alive once its work is done.
  process.channel.unref();
}
