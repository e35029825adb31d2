import { readFileSync } from 'node:fs';
import { readSafetensors, readTensorData } from '../../src/checkpoint/safetensors.js';

export const FIXTURES = 'test/fixtures';

interface ManifestEntry {
  file: string;
  name: string;
  images?: string[];
  texts?: string[];
  pixel_values_from?: string[];
}

const manifest = JSON.parse(readFileSync(`${FIXTURES}/goldens/manifest.json`, 'utf8')) as { tensors: ManifestEntry[] };
const texts = new Map(
  (JSON.parse(readFileSync(`${FIXTURES}/texts.json`, 'utf8')) as Array<{ id: string; text: string }>).map((t) => [t.id, t.text]),
);

export function textById(id: string): string {
  const t = texts.get(id);
  if (t === undefined) throw new Error(`no fixture text ${id}`);
  return t;
}

export function manifestEntry(file: string, name: string): ManifestEntry {
  const e = manifest.tensors.find((t) => t.file === file && t.name === name);
  if (!e) throw new Error(`no manifest entry ${file}:${name}`);
  return e;
}

/** Reads named tensors of a golden safetensors file as plain typed arrays. */
export async function goldenFile(file: string): Promise<(name: string) => Promise<{ data: Float32Array | BigInt64Array | Uint8Array; shape: number[] }>> {
  const st = await readSafetensors(`${FIXTURES}/goldens/${file}`);
  return async (name: string) => {
    const info = st.tensors.get(name);
    if (!info) throw new Error(`golden ${file} has no tensor ${name}`);
    return { data: (await readTensorData(info)) as Float32Array | BigInt64Array | Uint8Array, shape: info.shape };
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
