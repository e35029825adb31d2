/**
 * A small stand-in for the Hugging Face Hub on 127.0.0.1, answering the requests that
 * resolveCheckpoint (and @huggingface/hub's modelInfo) make, the way huggingface.co does:
 *
 *   GET  /api/models/{repo}/revision/{rev}      -> {sha, siblings: [{rfilename}]}; 401 +
 *        X-Error-Code: RepositoryNotFound for an unknown repo (anonymous), 404 RevisionNotFound
 *   HEAD|GET /{repo}/resolve/{rev}/{file}       -> git files: 200, ETag = git blob sha1,
 *        X-Repo-Commit, Range support; LFS files (*.safetensors, *.bin): 302 to the "CDN" server
 *        with X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit; 404 EntryNotFound
 *   GET  {cdn}/blobs/{sha256}                   -> the LFS content, Range support (206)
 *
 * The CDN is a second server (another origin), as on huggingface.co, so tests can check that
 * the token is not sent there. Every request is recorded; hooks corrupt content or cut a
 * download short.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface MockRepo {
  /** `owner/name` */
  id: string;
  /** Branch, tag or `refs/pr/N` -> commit sha. */
  refs: Record<string, string>;
  /** Commit sha -> file name -> content. */
  commits: Record<string, Record<string, Buffer>>;
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  method: string;
  /** Raw request target, still URL-encoded. */
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface MockHub {
  /** e.g. http://127.0.0.1:40123 */
  endpoint: string;
  cdn: string;
  requests: RecordedRequest[];
  repos: Map<string, MockRepo>;
  /** When set, every Hub request (not CDN) needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Gated repos: the API answers, file downloads are refused with X-Error-Code: GatedRepo. */
  gated: Set<string>;
  /** File name -> bytes served instead of the real content (the announced etag stays the real one). */
  corrupt: Map<string, Buffer>;
  /** File name -> byte count after which the next GET of that file stops (connection closed), once. */
  cutOnce: Map<string, number>;
  /** File name -> byte count after which the next GET of that file goes silent (connection kept open), once. */
  stallOnce: Map<string, number>;
  /** Requests seen by one server, or by both. */
  requestsTo(server?: 'hub' | 'cdn'): RecordedRequest[];
  close(): Promise<void>;
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** The id git gives a blob, which the Hub sends as ETag for files stored in git. */
export function gitBlobSha1(buf: Buffer): string {
  return createHash('sha1').update(`blob ${buf.length}\0`).update(buf).digest('hex');
}

/** A made-up but well-formed 40-hex commit sha. */
export function fakeCommit(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

export function isLfs(name: string): boolean {
  return /\.(safetensors|bin|onnx|h5|msgpack)$/.test(name);
}

/** The files of a fixture model folder, optionally minus some. */
export function folderFiles(dir: string, exclude: readonly string[] = []): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const name of readdirSync(dir).sort()) {
    if (!exclude.includes(name)) out[name] = readFileSync(join(dir, name));
  }
  return out;
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': data.length, ...headers });
  res.end(data);
}

/** Serve `body` with Range support; `stop` ends (cut) or freezes (stall) the body after some bytes. */
function sendContent(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  body: Buffer,
  headers: Record<string, string | number>,
  stop: { after: number; how: 'cut' | 'stall' } | undefined,
): void {
  const total = body.length;
  let start = 0;
  let end = total - 1;
  let status = 200;
  const range = req.headers.range;
  const h: Record<string, string | number> = { 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream', ...headers };
  if (range !== undefined) {
    const m = /^bytes=(\d+)-(\d*)$/.exec(range);
    if (m === null || Number(m[1]) >= total) {
      res.writeHead(416, { ...h, 'Content-Range': `bytes */${total}` });
      res.end();
      return;
    }
    start = Number(m[1]);
    if (m[2] !== '') end = Math.min(total - 1, Number(m[2]));
    status = 206;
    h['Content-Range'] = `bytes ${start}-${end}/${total}`;
  }
  h['Content-Length'] = end - start + 1;
  res.writeHead(status, h);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const slice = body.subarray(start, end + 1);
  if (stop !== undefined && stop.after < slice.length) {
    // Send part of the body, then close (the client sees the body end before Content-Length),
    // or send nothing more while keeping the connection open (close() ends it).
    res.write(slice.subarray(0, stop.after), () => {
      if (stop.how === 'cut') res.socket?.end();
    });
    return;
  }
  res.end(slice);
}

export async function startMockHub(repos: MockRepo[]): Promise<MockHub> {
  const requests: RecordedRequest[] = [];
  const byHash = new Map<string, { name: string; content: Buffer }>();
  for (const repo of repos) {
    for (const files of Object.values(repo.commits)) {
      for (const [name, content] of Object.entries(files)) if (isLfs(name)) byHash.set(sha256(content), { name, content });
    }
  }

  const hub: MockHub = {
    endpoint: '',
    cdn: '',
    requests,
    repos: new Map(repos.map((r) => [r.id, r])),
    corrupt: new Map(),
    gated: new Set(),
    cutOnce: new Map(),
    stallOnce: new Map(),
    requestsTo: (server) => (server === undefined ? requests : requests.filter((r) => r.server === server)),
    close: async () => {
      for (const s of [hubServer, cdnServer]) {
        s.closeAllConnections();
        await new Promise<void>((r) => s.close(() => r()));
      }
    },
  };

  const serveFile = (req: http.IncomingMessage, res: http.ServerResponse, name: string, content: Buffer, headers: Record<string, string>) => {
    const body = hub.corrupt.get(name) ?? content;
    let stop: { after: number; how: 'cut' | 'stall' } | undefined;
    for (const [how, map] of [['cut', hub.cutOnce], ['stall', hub.stallOnce]] as const) {
      if (req.method === 'GET' && map.has(name)) {
        stop = { after: map.get(name)!, how };
        map.delete(name);
      }
    }
    sendContent(req, res, body, headers, stop);
  };

  const hubServer = http.createServer((req, res) => {
    requests.push({ server: 'hub', method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const path = new URL(req.url ?? '/', 'http://x').pathname;

    const authorize = (): boolean => {
      if (hub.token === undefined) return true;
      const auth = req.headers.authorization;
      if (auth === `Bearer ${hub.token}`) return true;
      if (auth === undefined) {
        // What huggingface.co answers anonymous requests for private (or missing) repos.
        json(res, 401, { error: 'Repository not found' }, { 'X-Error-Code': 'RepositoryNotFound' });
      } else {
        json(res, 401, { error: 'Invalid credentials in Authorization header' });
      }
      return false;
    };
    const lookup = (repoId: string, rev: string): { repo: MockRepo; commit: string; files: Record<string, Buffer> } | undefined => {
      const repo = hub.repos.get(repoId);
      if (repo === undefined) {
        json(res, 401, { error: 'Repository not found' }, { 'X-Error-Code': 'RepositoryNotFound' });
        return undefined;
      }
      const commit = repo.refs[rev] ?? (repo.commits[rev] ? rev : undefined);
      if (commit === undefined) {
        json(res, 404, { error: `Invalid rev id: ${rev}` }, { 'X-Error-Code': 'RevisionNotFound' });
        return undefined;
      }
      return { repo, commit, files: repo.commits[commit] };
    };

    const api = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(path);
    if (api !== null) {
      if (req.method !== 'GET') return json(res, 405, { error: 'method' });
      if (!authorize()) return;
      const found = lookup(api[1], decodeURIComponent(api[2]));
      if (found === undefined) return;
      return json(res, 200, {
        _id: `id-${found.repo.id}`,
        id: found.repo.id,
        sha: found.commit,
        private: false,
        lastModified: '2024-01-01T00:00:00.000Z',
        siblings: Object.keys(found.files).map((rfilename) => ({ rfilename })),
      });
    }

    const resolveMatch = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (resolveMatch !== null) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method' });
      if (!authorize()) return;
      const found = lookup(resolveMatch[1], decodeURIComponent(resolveMatch[2]));
      if (found === undefined) return;
      if (hub.gated.has(found.repo.id)) {
        const error = `Access to model ${found.repo.id} is restricted. You must have access to it and be authenticated to access it.`;
        return json(res, req.headers.authorization ? 403 : 401, { error }, { 'X-Error-Code': 'GatedRepo' });
      }
      const name = resolveMatch[3].split('/').map(decodeURIComponent).join('/');
      const content = found.files[name];
      if (content === undefined) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      if (isLfs(name)) {
        const oid = sha256(content);
        res.writeHead(302, {
          Location: `${hub.cdn}/blobs/${oid}`,
          ETag: `"lfs-pointer-${oid.slice(0, 8)}"`,
          'X-Linked-Etag': `"${oid}"`,
          'X-Linked-Size': String(content.length),
          'X-Repo-Commit': found.commit,
          'Content-Length': 0,
        });
        res.end();
        return;
      }
      return serveFile(req, res, name, content, { ETag: `"${gitBlobSha1(content)}"`, 'X-Repo-Commit': found.commit });
    }
    json(res, 404, { error: 'not found' });
  });

  const cdnServer = http.createServer((req, res) => {
    requests.push({ server: 'cdn', method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const m = /^\/blobs\/([0-9a-f]{64})$/.exec(new URL(req.url ?? '/', 'http://x').pathname);
    const entry = m === null ? undefined : byHash.get(m[1]);
    if (entry === undefined) {
      res.writeHead(404);
      res.end();
      return;
    }
    serveFile(req, res, entry.name, entry.content, { ETag: `"s3-${m![1].slice(0, 12)}"` });
  });

  const listen = (s: http.Server) =>
    new Promise<string>((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
  hub.endpoint = await listen(hubServer);
  hub.cdn = await listen(cdnServer);
  return hub;
}

/** An http://127.0.0.1 URL on which nothing listens (a port that was just free). */
export async function closedEndpoint(): Promise<string> {
  const s = http.createServer();
  const url = await new Promise<string>((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
  await new Promise<void>((r) => s.close(() => r()));
  return url;
}
