import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * `blip-itm serve` in a child process, as users run it: the load generator must not share the
 * server's event loop (or its two CPUs' worth of onnxruntime threads) with the server it measures.
 */
export interface ServeProcess {
  url: string;
  child: ChildProcess;
  /** Wall seconds from spawn until /readyz answered 200. */
  readySeconds: number;
  stop(): Promise<number | null>;
}

export async function startServeProcess(args: string[], options: { readyTimeoutMs?: number } = {}): Promise<ServeProcess> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, HF_HUB_OFFLINE: '1' },
  });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += String(d); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { url?: string };
        if (entry.url) resolve(entry.url);
      } catch {
        // not a log line
      }
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code} before listening: ${stderr.trim()}`)));
  });
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  for (;;) {
    const r = await fetch(`${url}/readyz`).catch(() => undefined);
    if (r?.status === 200) break;
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode} while loading: ${stderr.trim()}`);
    if (Date.now() > deadline) throw new Error('serve did not become ready in time');
    await new Promise((res) => setTimeout(res, 100));
  }
  return {
    url,
    child,
    readySeconds: (performance.now() - started) / 1000,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** A counter or histogram series from Prometheus text, e.g. `blip_engine_batch_size_sum{stage="vision"}`. */
export function metricValue(text: string, series: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}
