// Builds the browser bundle (package export "blip-itm/web", condition "browser"):
//   dist/web/blip-itm.web.js        ESM bundle of src/web/index.ts and onnxruntime-web
//   dist/web/ort-wasm-*.{wasm,mjs}  onnxruntime-web's runtime, which it loads from beside the bundle
//   dist/web/meta.json              esbuild's metafile (test/web.test.ts checks no Node module is in it)
//
// The core modules the browser build reuses (graph builders, tokenizer, image processor, config
// parsing) import node:fs/node:path/sharp at load time for their Node-only entry points. Until
// those sit behind platform seams, the bundle replaces them by the stubs below: the few path
// helpers the graph builder calls work on plain names; everything else throws if ever reached.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const OUT = 'dist/web';
const STUBBED = /^(node:.*|fs|path|fs\/promises|sharp|onnxruntime-node)$/;

const posixPath = `
const norm = (p) => String(p).replace(/\\/+$/, '') || '/';
exports.basename = (p) => norm(p).split('/').pop();
exports.dirname = (p) => { const s = norm(p); const i = s.lastIndexOf('/'); return i < 0 ? '.' : i === 0 ? '/' : s.slice(0, i); };
exports.join = (...parts) => parts.filter(Boolean).join('/').replace(/\\/+/g, '/');
exports.resolve = (...parts) => exports.join(...parts);
exports.sep = '/';
exports.default = exports;
`;

function stubSource(name) {
  const unavailable = `const unavailable = (what) => () => { throw new Error(what + ' is not available in the browser build of blip-itm'); };`;
  if (name === 'node:path' || name === 'path') return posixPath;
  if (name === 'node:fs' || name === 'fs') {
    // The graph builder resolves each weight's file with realpathSync; browser "files" are plain names.
    return `${unavailable}
exports.realpathSync = (p) => String(p);
exports.existsSync = () => false;
exports.constants = {};
for (const f of ['readFileSync', 'statSync', 'openSync', 'createReadStream']) exports[f] = unavailable('${name}.' + f);`;
  }
  return `${unavailable}
const target = unavailable(${JSON.stringify(name)});
module.exports = new Proxy(target, { get: (t, key) => key === '__esModule' ? false : key === 'default' ? target : unavailable(${JSON.stringify(name)} + '.' + String(key)) });`;
}

const nodeStubs = {
  name: 'node-stubs',
  setup(b) {
    b.onResolve({ filter: STUBBED }, (args) => ({ path: args.path, namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, (args) => ({ contents: stubSource(args.path), loader: 'js' }));
  },
};

mkdirSync(OUT, { recursive: true });
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
  plugins: [nodeStubs],
  logLevel: 'warning',
});
writeFileSync(join(OUT, 'meta.json'), JSON.stringify(result.metafile));

// The default onnxruntime-web build (JSEP: WASM and WebGPU in one binary) fetches these from
// the bundle's own URL.
const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm'));
for (const f of ['ort-wasm-simd-threaded.jsep.wasm', 'ort-wasm-simd-threaded.jsep.mjs']) copyFileSync(join(ortDist, f), join(OUT, f));
console.log(`built ${OUT}/blip-itm.web.js`);
