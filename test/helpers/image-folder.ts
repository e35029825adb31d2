import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import sharp from 'sharp';

/** Pixels of synthetic image `i`: a colour, stripes and a gradient that differ from image to image. */
export function syntheticPixels(i: number, width = 24 + (i % 5) * 4, height = 24 + (i % 3) * 4): { data: Buffer; width: number; height: number } {
  const data = Buffer.alloc(width * height * 3);
  const base = [(i * 53) % 256, (i * 97 + 40) % 256, (i * 151 + 90) % 256];
  const period = 2 + (i % 6);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const stripe = Math.floor((i % 2 === 0 ? x : y) / period) % 2 === 0;
      data[o] = stripe ? base[0] : 255 - base[0];
      data[o + 1] = (base[1] + x * (i % 4)) % 256;
      data[o + 2] = (base[2] + y * ((i % 3) + 1)) % 256;
    }
  }
  return { data, width, height };
}

/** Writes image `i` as a PNG (or the format `path` ends with) at `path`. */
export async function writeSyntheticImage(path: string, i: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const { data, width, height } = syntheticPixels(i);
  await sharp(data, { raw: { width, height, channels: 3 } }).toFile(path);
}

/**
 * `count` small distinct images under `dir`: PNGs mostly, every 7th a JPEG, every 4th in a subfolder
 * (two levels for some), one with a quote in its name. Returns their absolute paths, sorted.
 */
export async function writeImageFolder(dir: string, count: number, first = 0): Promise<string[]> {
  const paths: string[] = [];
  for (let i = first; i < first + count; i++) {
    const name = i === first + 3 ? `it's ${i}.png` : `img_${String(i).padStart(4, '0')}.${i % 7 === 6 ? 'jpg' : 'png'}`;
    const sub = i % 4 === 1 ? 'sub' : i % 8 === 2 ? join('sub', 'deeper') : '';
    const path = join(dir, sub, name);
    await writeSyntheticImage(path, i);
    paths.push(path);
  }
  return paths.sort();
}
