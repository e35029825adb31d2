import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { StaticServer } from './static-server.js';

export const CHROMIUM = '/usr/bin/chromium';
export const BUNDLE = '/dist/web/blip-itm.web.js';
/** The `skip` of a browser-build suite: a reason where Debian's chromium is missing, else false. */
export const skipWithoutChromium: string | false = existsSync(CHROMIUM) ? false : `${CHROMIUM} is missing (apt-get install chromium); the browser build is not tested`;

export interface BundlePage {
  server: StaticServer;
  browser: Browser;
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/**
 * Builds the browser bundle, serves the repository from 127.0.0.1 (COOP/COEP, so WASM gets
 * threads) and opens a blank page of that origin in headless Chromium with WebGPU (SwiftShader).
 */
export async function openBundlePage(title: string): Promise<BundlePage> {
  execFileSync(process.execPath, ['scripts/build-web.mjs'], { stdio: 'pipe' });
  const server = new StaticServer(resolve('.'));
  server.route('/', 'text/html; charset=utf-8', `<!doctype html><meta charset="utf-8"><title>${title}</title>`);
  await server.start();
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--enable-unsafe-webgpu'] });
  const context = await browser.newContext();
  // tsx compiles the functions tests pass to page.evaluate with esbuild's keepNames, whose
  // __name helper the page lacks.
  await context.addInitScript('globalThis.__name = (f) => f;');
  const page = await context.newPage();
  await page.goto(`${server.origin}/`);
  return {
    server, browser, context, page,
    async close() {
      await browser.close();
      await server.stop();
    },
  };
}
