import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { readAsFloat32 } from '../src/checkpoint/derived-weights.js';
import { floatsToHalf, halfToFloats } from '../src/checkpoint/half.js';
import { readSafetensors } from '../src/checkpoint/safetensors.js';
import { writeSafetensors } from '../src/checkpoint/safetensors-writer.js';
import { manifestEntry, textById } from '../test/helpers/goldens.js';

/**
 * Which float16 rounding moves the ITM ranking of a fixture model: each variant rounds one group of
 * checkpoint tensors to float16 (stored as float32, so everything else stays fp32) and reports the
 * max abs change of the ITM margin l1 - l0 from fp32 over the fixture pairs, and the caption pairs
 * whose order flips. Then the fp16 models themselves (CPU graphs, and the float16-end-to-end GPU graphs
 * run on CPU). Figures quoted in README "Precision".
 *
 *   node --import tsx bench/fp16-rounding.ts [tiny|tiny-384]
 */
const name = process.argv[2] ?? 'tiny-384';
const src = `test/fixtures/models/${name}`;
const pairs = manifestEntry(`model_${name}.safetensors`, 'itm/logits');
const texts = [...new Set(pairs.texts!.map(textById))];
const images = [...new Set(pairs.images!.map((p) => `test/fixtures/${p}`))];
const work = mkdtempSync(join(tmpdir(), 'blip-fp16-rounding-'));
const round = (x: Float32Array) => halfToFloats(floatsToHalf(x));

async function roundedCheckpoint(pick: (tensor: string) => boolean): Promise<string> {
  const dir = mkdtempSync(join(work, 'ckpt-'));
  for (const f of readdirSync(src)) if (!f.endsWith('.safetensors')) copyFileSync(join(src, f), join(dir, f));
  const st = await readSafetensors(`${src}/model.safetensors`);
  await writeSafetensors(join(dir, 'model.safetensors'), [...st.tensors.values()].map((t) => ({
    name: t.name, dtype: 'F32' as const, shape: t.shape,
    bytes: async () => { const x = await readAsFloat32(t); return new Uint8Array((pick(t.name) ? round(x) : x).buffer); },
  })));
  return dir;
}

async function margins(dir: string, options: { dtype?: 'fp16'; halfActivations?: boolean } = {}): Promise<number[][]> {
  const m = await BlipForImageTextRetrieval.fromPretrained(dir, { ...options, weightsCacheDir: join(work, 'cache') });
  const tokens = m.processor.tokenize(texts);
  const out: number[][] = [];
  for (const image of images) {
    const l = (await m.itmForImage(await m.encodeImages(await m.processor.preprocessImages([image])), 0, tokens)).data;
    out.push(texts.map((_, j) => l[2 * j + 1] - l[2 * j]));
  }
  await m.dispose();
  return out;
}

const ref = await margins(src);
function report(label: string, r: number[][]): void {
  let maxShift = 0;
  const flips: string[] = [];
  for (let i = 0; i < images.length; i++) {
    for (let a = 0; a < texts.length; a++) {
      maxShift = Math.max(maxShift, Math.abs(r[i][a] - ref[i][a]));
      for (let b = a + 1; b < texts.length; b++) {
        if (Math.sign(ref[i][a] - ref[i][b]) !== Math.sign(r[i][a] - r[i][b])) flips.push(`image ${i} captions ${a}/${b}: fp32 ${(ref[i][a] - ref[i][b]).toExponential(1)}, now ${(r[i][a] - r[i][b]).toExponential(1)}`);
      }
    }
  }
  process.stdout.write(`${label.padEnd(44)} max |margin change| ${maxShift.toExponential(2)}  flips: ${flips.length ? flips.join('; ') : 'none'}\n`);
}

const norm = (t: string) => /LayerNorm|layer_norm|layernorm/.test(t);
const positions = (t: string) => /position_embedding|class_embedding/.test(t);
const groups: Array<[string, (t: string) => boolean]> = [
  ['all tensors', () => true],
  ['LayerNorm parameters only', norm],
  ['embeddings only (patch, class, position, word)', (t) => t.includes('embedding')],
  ['patch embedding only', (t) => t.includes('patch_embedding')],
  ['text position embeddings only', (t) => t.includes('text_encoder.embeddings.position_embeddings')],
  ['word embeddings only', (t) => t.includes('word_embeddings')],
  ['biases only (not LayerNorm)', (t) => t.endsWith('.bias') && !norm(t)],
  ['all but LayerNorm and position tables', (t) => !norm(t) && !positions(t)],
];
try {
  for (const [label, pick] of groups) report(`rounded: ${label}`, await margins(await roundedCheckpoint(pick)));
  report('fp16 model, CPU graphs', await margins(src, { dtype: 'fp16' }));
  report('fp16 model, float16 end to end', await margins(src, { dtype: 'fp16', halfActivations: true }));
} finally {
  rmSync(work, { recursive: true, force: true });
}
