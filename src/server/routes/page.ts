import { readFileSync } from 'node:fs';
import type {} from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import type { ServiceContext } from '../context.js';

/**
 * The web page at "/": static files beside this module's folder (src/server/page under tsx,
 * dist/server/page once built; the build copies them). Read once at start-up, served from memory.
 */
const PAGE_DIR = new URL('../page/', import.meta.url);

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'browser-mode.js': 'text/javascript; charset=utf-8',
  'reply.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

export function pageRoutes(app: FastifyInstance, ctx: ServiceContext): void {
  const files = Object.fromEntries(Object.keys(ASSETS).map((name) => [name, readFileSync(new URL(name, PAGE_DIR), 'utf8')]));
  // The model name is the only dynamic part; escaped, since a folder name could hold markup.
  const html = files['index.html'].replaceAll('{{MODEL}}', escapeHtml(ctx.modelName));
  const send = (name: string, body: string) => async (_request: unknown, reply: import('fastify').FastifyReply) => {
    reply
      .header('content-type', ASSETS[name])
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      // Everything the page needs comes from this server; nothing from the internet. Browser mode
      // compiles onnxruntime-web's WASM ('wasm-unsafe-eval') and runs its threads as workers.
      .header('content-security-policy', "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; frame-ancestors 'none'")
      // Cross-origin isolation: without it onnxruntime-web runs on one thread (no SharedArrayBuffer).
      .header('cross-origin-opener-policy', 'same-origin')
      .header('cross-origin-embedder-policy', 'require-corp');
    return body;
  };
  const hide = { schema: { hide: true } };
  app.get('/', hide, send('index.html', html));
  app.get('/page/app.js', hide, send('app.js', files['app.js']));
  app.get('/page/browser-mode.js', hide, send('browser-mode.js', files['browser-mode.js']));
  app.get('/page/reply.js', hide, send('reply.js', files['reply.js']));
  app.get('/page/style.css', hide, send('style.css', files['style.css']));
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
