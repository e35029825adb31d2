import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { type BlipConfig, parseBlipConfig, visionTokens } from '../src/checkpoint/config.js';

/**
 * Tensor names and shapes of a BlipForImageTextRetrieval state dict, derived from its config
 * (the layout of Salesforce/blip-itm-*). Checked against the fixture checkpoints in the tests.
 */
export function retrievalTensorShapes(config: BlipConfig): Map<string, number[]> {
  const v = config.vision_config;
  const t = config.text_config;
  const E = config.image_text_hidden_size;
  const shapes = new Map<string, number[]>();
  const linear = (p: string, out: number, inp: number) => {
    shapes.set(`${p}.weight`, [out, inp]);
    shapes.set(`${p}.bias`, [out]);
  };
  const norm = (p: string, n: number) => {
    shapes.set(`${p}.weight`, [n]);
    shapes.set(`${p}.bias`, [n]);
  };
  const D = v.hidden_size;
  shapes.set('vision_model.embeddings.class_embedding', [1, 1, D]);
  shapes.set('vision_model.embeddings.patch_embedding.weight', [D, v.num_channels, v.patch_size, v.patch_size]);
  shapes.set('vision_model.embeddings.patch_embedding.bias', [D]);
  shapes.set('vision_model.embeddings.position_embedding', [1, visionTokens(v), D]);
  for (let i = 0; i < v.num_hidden_layers; i++) {
    const p = `vision_model.encoder.layers.${i}`;
    norm(`${p}.layer_norm1`, D);
    norm(`${p}.layer_norm2`, D);
    linear(`${p}.self_attn.qkv`, 3 * D, D);
    linear(`${p}.self_attn.projection`, D, D);
    linear(`${p}.mlp.fc1`, v.intermediate_size, D);
    linear(`${p}.mlp.fc2`, D, v.intermediate_size);
  }
  norm('vision_model.post_layernorm', D);
  const H = t.hidden_size;
  shapes.set('text_encoder.embeddings.word_embeddings.weight', [t.vocab_size, H]);
  shapes.set('text_encoder.embeddings.position_embeddings.weight', [t.max_position_embeddings, H]);
  norm('text_encoder.embeddings.LayerNorm', H);
  for (let i = 0; i < t.num_hidden_layers; i++) {
    const p = `text_encoder.encoder.layer.${i}`;
    for (const part of ['query', 'key', 'value']) linear(`${p}.attention.self.${part}`, H, H);
    linear(`${p}.attention.output.dense`, H, H);
    norm(`${p}.attention.output.LayerNorm`, H);
    linear(`${p}.crossattention.self.query`, H, H);
    linear(`${p}.crossattention.self.key`, H, t.encoder_hidden_size);
    linear(`${p}.crossattention.self.value`, H, t.encoder_hidden_size);
    linear(`${p}.crossattention.output.dense`, H, H);
    norm(`${p}.crossattention.output.LayerNorm`, H);
    linear(`${p}.intermediate.dense`, t.intermediate_size, H);
    linear(`${p}.output.dense`, H, t.intermediate_size);
    norm(`${p}.output.LayerNorm`, H);
  }
  linear('vision_proj', E, D);
  linear('text_proj', E, H);
  linear('itm_head', 2, H);
  return shapes;
}

/** Deterministic xorshift noise, scaled like a trained network's weights (std ~0.02, norms ~1). */
function fill(out: Float32Array, name: string, seed: { s: number }): void {
  const isNormWeight = /(LayerNorm|layer_norm\d?|post_layernorm)\.weight$/.test(name);
  const isBias = name.endsWith('.bias');
  const isEmbedding = /embedding/.test(name);
  const scale = isBias ? 0.01 : isEmbedding ? 0.05 : 0.02;
  let s = seed.s;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    // Sum of two uniforms: cheap, roughly bell-shaped, std ~ 0.41.
    const u = ((s >>> 0) / 4294967296 + ((s * 2654435761) >>> 0) / 4294967296 - 1) * 2.45;
    out[i] = isNormWeight ? 1 + 0.05 * u : scale * u;
  }
  seed.s = s || 1;
}

/**
 * Writes model.safetensors with random weights for `config`, plus the config, preprocessor and
 * tokenizer files copied from `filesFrom`, into `dir`. Reuses a complete earlier folder.
 */
export async function writeRandomCheckpoint(dir: string, configJson: unknown, filesFrom: Record<string, string>): Promise<string> {
  const target = join(dir, 'model.safetensors');
  const stamp = join(dir, '.complete');
  const configText = JSON.stringify(configJson, null, 2);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === configText) return dir;
  mkdirSync(dir, { recursive: true });
  const config = parseBlipConfig(configJson);
  const shapes = retrievalTensorShapes(config);
  const names = [...shapes.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const name of names) {
    const bytes = shapes.get(name)!.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape: shapes.get(name), data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const partial = `${target}.partial`;
  const out = createWriteStream(partial);
  out.write(len);
  out.write(json);
  const seed = { s: 0x9e3779b9 };
  for (const name of names) {
    const data = new Float32Array(shapes.get(name)!.reduce((a, b) => a * b, 1));
    fill(data, name, seed);
    if (!out.write(Buffer.from(data.buffer))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  renameSync(partial, target);
  writeFileSync(join(dir, 'config.json'), configText);
  for (const [name, from] of Object.entries(filesFrom)) copyFileSync(from, join(dir, name));
  writeFileSync(stamp, configText);
  return dir;
}

/**
 * The benchmarks' random-weight checkpoint of the real blip-itm-large-coco layout, written once into
 * the OS temp folder (BLIP_BENCH_DIR overrides); returns its folder.
 */
export async function benchCheckpoint(): Promise<string> {
  const REF = 'test/fixtures/reference-configs';
  const dir = process.env.BLIP_BENCH_DIR ?? join(tmpdir(), 'blip-itm-bench-large-coco-random');
  await writeRandomCheckpoint(dir, JSON.parse(readFileSync(`${REF}/blip-itm-large-coco.config.json`, 'utf8')), {
    'preprocessor_config.json': `${REF}/blip-itm-large-coco.preprocessor_config.json`,
    'tokenizer_config.json': `${REF}/blip-itm-large-coco.tokenizer_config.json`,
    'special_tokens_map.json': `${REF}/blip-itm-large-coco.special_tokens_map.json`,
    'vocab.txt': 'test/fixtures/models/tiny/vocab.txt',
  });
  return dir;
}
