import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ApiError, RETRY_AFTER_NOT_READY_S } from '../api-error.js';
import type { ServiceContext } from '../context.js';

/**
 * What the page's "run in this browser" mode loads: the browser bundle (GET /web/<file>, public:
 * it is the package's own code) and the loaded checkpoint's files, read-only (GET /model/...,
 * behind the API key like /v1: the weights are the model, and whoever has them needs the service
 * no more). Only the files the browser build reads are offered, by fixed name, so no path from a
 * request ever reaches the file system.
 *
 *   GET /model/manifest.json  -> {"model", "revision", "base": "/model/<revision>/", "files": [...]}
 *   GET /model/<revision>/<file>
 *
 * The revision is a hash of the files' sizes and modification times: the page's Cache Storage
 * keys downloads by URL, so a server restarted on another checkpoint must not hand out old URLs.
 */
export const MODEL_FILES = [
  'config.json', 'preprocessor_config.json', 'vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json',
  'added_tokens.json', 'tokenizer.json', 'model.safetensors',
] as const;

const WEB_FILES: Record<string, string> = {
  'blip-itm.web.js': 'text/javascript; charset=utf-8',
  'ort-wasm-simd-threaded.jsep.mjs': 'text/javascript; charset=utf-8',
  'ort-wasm-simd-threaded.jsep.wasm': 'application/wasm',
};

/** dist/web from src/server/routes (tsx) and from dist/server/routes (built) alike. */
const WEB_DIR = new URL('../../../dist/web/', import.meta.url);

interface Offered {
  dir: string;
  revision: string;
  files: Map<string, number>;
}

export function modelFileRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const hide = { schema: { hide: true } };
  let offered: Offered | undefined;
  const current = async (): Promise<Offered> => {
    const dir = ctx.slot.checkpointDir;
    if (!dir) {
      if (!ctx.slot.ready) throw new ApiError(503, 'not_ready', 'the model is still loading; retry shortly', RETRY_AFTER_NOT_READY_S);
      throw new ApiError(404, 'not_found', 'this server does not offer its model files');
    }
    if (offered?.dir !== dir) offered = await describe(dir);
    return offered;
  };

  app.get('/model/manifest.json', hide, async (_request, reply) => {
    const o = await current();
    void reply.header('cache-control', 'no-cache');
    return { model: ctx.modelName, revision: o.revision, base: `/model/${o.revision}/`, files: [...o.files.keys()] };
  });

  app.get<{ Params: { revision: string; file: string } }>('/model/:revision/:file', hide, async (request, reply) => {
    const o = await current();
    const { revision, file } = request.params;
    if (revision !== o.revision) throw new ApiError(404, 'not_found', `model revision ${revision} is not the one this server has loaded (${o.revision}); reload the page`);
    const size = o.files.get(file);
    if (size === undefined) throw new ApiError(404, 'not_found', `the checkpoint offers no file "${file}"`);
    send(reply, file.endsWith('.json') ? 'application/json' : file.endsWith('.txt') ? 'text/plain; charset=utf-8' : 'application/octet-stream', size);
    // The URL names the revision, so its bytes never change.
    void reply.header('cache-control', 'private, max-age=31536000, immutable');
    return reply.send(createReadStream(join(o.dir, file)));
  });

  app.get<{ Params: { file: string } }>('/web/:file', hide, async (request, reply) => {
    const type = WEB_FILES[request.params.file];
    if (!type) throw new ApiError(404, 'not_found', `no file /web/${request.params.file}`);
    const url = new URL(request.params.file, WEB_DIR);
    const size = await stat(url).then((s) => s.size, () => undefined);
    if (size === undefined) throw new ApiError(404, 'not_found', 'the browser build is not built on this server (npm run build writes dist/web)');
    send(reply, type, size);
    void reply.header('cache-control', 'no-cache');
    return reply.send(createReadStream(url));
  });
}

function send(reply: FastifyReply, type: string, size: number): void {
  void reply
    .header('content-type', type)
    .header('content-length', String(size))
    .header('x-content-type-options', 'nosniff')
    // The page is cross-origin isolated (WASM threads), so what it loads must allow itself there.
    .header('cross-origin-resource-policy', 'same-origin')
    .header('cross-origin-embedder-policy', 'require-corp');
}

async function describe(dir: string): Promise<Offered> {
  const files = new Map<string, number>();
  const hash = createHash('sha256');
  for (const name of MODEL_FILES) {
    const st = await stat(join(dir, name)).catch(() => undefined);
    if (!st?.isFile()) continue;
    files.set(name, st.size);
    hash.update(`${name} ${st.size} ${st.mtimeMs}\n`);
  }
  return { dir, revision: hash.digest('hex').slice(0, 16), files };
}
