import { createServer, type Server } from 'node:http';
import { open, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import type { AddressInfo } from 'node:net';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json',
  '.wasm': 'application/wasm', '.png': 'image/png', '.jpg': 'image/jpeg', '.webp': 'image/webp', '.txt': 'text/plain',
  '.map': 'application/json', '.safetensors': 'application/octet-stream',
};

export interface LoggedRequest {
  path: string;
  status: number;
  range: string | undefined;
}

/**
 * A static file server for browser tests: files under `root`, the COOP/COEP headers threaded WASM
 * needs, single HTTP ranges, and a log of every request (tests assert what was downloaded).
 */
export class StaticServer {
  readonly log: LoggedRequest[] = [];
  private server: Server | undefined;
  private extra = new Map<string, { type: string; body: string }>();
  private mounts: Array<[string, string]> = [];

  constructor(private readonly root: string) {}

  /** Serves `body` at `path` (e.g. a generated test page). */
  route(path: string, type: string, body: string): void {
    this.extra.set(path, { type, body });
  }

  /** Serves the files of `dir` under the URL prefix `prefix` ("/model/"). */
  mount(prefix: string, dir: string): void {
    this.mounts.push([prefix, dir]);
  }

  get origin(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      void this.handle(req.url ?? '/', req.headers.range, res);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  private async handle(url: string, range: string | undefined, res: import('node:http').ServerResponse): Promise<void> {
    const path = decodeURIComponent(new URL(url, 'http://x').pathname);
    const done = (status: number): void => {
      this.log.push({ path, status, range });
    };
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
    const extra = this.extra.get(path);
    if (extra) {
      res.writeHead(200, { 'Content-Type': extra.type }).end(extra.body);
      return done(200);
    }
    const mount = this.mounts.find(([prefix]) => path.startsWith(prefix));
    const root = mount ? mount[1] : this.root;
    const file = normalize(join(root, mount ? path.slice(mount[0].length) : path));
    if (!file.startsWith(root + sep)) {
      res.writeHead(403).end();
      return done(403);
    }
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) {
      res.writeHead(404).end();
      return done(404);
    }
    const type = TYPES[extname(file)] ?? 'application/octet-stream';
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const m = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (m) {
      start = Number(m[1]);
      end = m[2] ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
      status = 206;
      res.setHeader('Content-Range', `bytes ${start}-${end}/${st.size}`);
    }
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(end - start + 1), 'Accept-Ranges': 'bytes' });
    const fh = await open(file, 'r');
    const stream = fh.createReadStream({ start, end });
    stream.pipe(res);
    stream.on('close', () => void fh.close());
    done(status);
  }
}
