// Builds the browser bundle (package export "blip-itm/web", condition "browser"):
//   dist/web/blip-itm.web.js        ESM bundle of src/web/index.ts and onnxruntime-web
//   dist/web/ort-wasm-*.{wasm,mjs}  onnxruntime-web's runtime, which it loads from beside the bundle
//   dist/web/meta.json              esbuild's metafile (test/web.test.ts checks no Node module is in it)
//
// The core modules the browser build reuses (checkpoint parsing, graph builders, tokenizer, image
// processor, the model's forward logic) import no Node-only module: they take the platform through
// small seams (byte ranges, an image decoder, the onnxruntime module and its sessions), and their
// Node entry points live in modules only Node code imports (docs/browser.md, "Platform seams").
// Nothing is stubbed: if a Node-only module is ever reached, the build fails and names who
// imported it, and test/web.test.ts checks the metafile besides.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const OUT = 'dist/web';
const NODE_PACKAGES = ['sharp', 'onnxruntime-node', '@duckdb/node-api', '@lancedb/lancedb', 'fastify', 'piscina', 'bullmq', 'ioredis'];
const NODE_ONLY = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`), ...NODE_PACKAGES]);

const refuseNodeModules = {
  name: 'refuse-node-modules',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      const bare = args.path.startsWith('node:') ? args.path : args.path.split('/').slice(0, args.path.startsWith('@') ? 2 : 1).join('/');
      if (!NODE_ONLY.has(bare) && !NODE_ONLY.has(args.path)) return undefined;
      return { errors: [{ text: `${args.path} is Node-only and must not reach the browser bundle (imported by ${args.importer}); give it a platform seam` }] };
    });
  },
};

mkdirSync(OUT, { recursive: true });
// esbuild has already printed its errors (logLevel 'warning'); its exception adds only a stack.
const result = await build({
  entryPoints: ['src/web/index.ts'],
  outfile: join(OUT, 'blip-itm.web.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  metafile: true,
  minify: true,
  legalComments: 'eof',
  plugins: [refuseNodeModules],
  logLevel: 'warning',
}).catch(() => process.exit(1));
writeFileSync(join(OUT, 'meta.json'), JSON.stringify(result.metafile));

// The default onnxruntime-web build (JSEP: WASM and WebGPU in one binary) fetches these from
// the bundle's own URL.
const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm'));
for (const f of ['ort-wasm-simd-threaded.jsep.wasm', 'ort-wasm-simd-threaded.jsep.mjs']) copyFileSync(join(ortDist, f), join(OUT, f));
console.log(`built ${OUT}/blip-itm.web.js`);
