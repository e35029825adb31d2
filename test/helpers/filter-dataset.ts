import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import sharp from 'sharp';
import tar from 'tar-stream';
import { FIXTURES } from './goldens.js';

/**
 * A generated image-text dataset for the filter's tests: variants of the fixture photos (crops,
 * flips, resizes; JPEG and PNG) with a few captions each, plus bad rows of every kind, written in
 * all four input formats with the same rows.
 */
export interface DatasetRow {
  id: string;
  /** Path under the image root. */
  image: string;
  caption: string;
  /** The error class this row must get, or null for a scorable row. */
  bad: null | 'missing' | 'corrupt' | 'empty' | 'nul';
}

export interface FilterDataset {
  dir: string;
  imageRoot: string;
  rows: DatasetRow[];
  images: number;
  csv: string[];
  jsonl: string;
  parquet: string;
  shards: string[];
}

const PHOTOS = ['coco_000000039769.png', 'skimage_chelsea.png', 'skimage_coffee.png', 'skimage_rocket.jpg'];
const WORDS = ['a', 'cat', 'dog', 'two', 'on', 'the', 'red', 'blanket', 'cup', 'of', 'coffee', 'rocket', 'launch', 'sky', 'sofa', 'remote', 'sleeping', 'table', 'blue', 'white'];

/** A deterministic pseudo-random caption of 3-12 words. */
function caption(seed: number): string {
  let x = (seed * 2654435761) >>> 0;
  const n = 3 + (x % 10);
  const words: string[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    words.push(WORDS[(x >>> 8) % WORDS.length]);
  }
  return words.join(' ');
}

/** Writes `count` image variants under `root/img`; returns their paths relative to root. */
async function writeVariants(root: string, count: number): Promise<string[]> {
  mkdirSync(join(root, 'img'), { recursive: true });
  const sources = await Promise.all(PHOTOS.map(async (p) => {
    const { data, info } = await sharp(join(FIXTURES, 'images', p)).removeAlpha().resize(160, 120, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height };
  }));
  const paths: string[] = [];
  const jobs: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const s = sources[i % sources.length];
    const w = 48 + ((i * 7) % 100);
    const h = 40 + ((i * 11) % 70);
    const left = (i * 13) % (s.width - w + 1);
    const top = (i * 5) % (s.height - h + 1);
    let img = sharp(s.data, { raw: { width: s.width, height: s.height, channels: 3 } }).extract({ left, top, width: w, height: h });
    if (i % 3 === 1) img = img.flop();
    if (i % 5 === 2) img = img.flip();
    img = img.resize(24 + (i % 40), 20 + ((i * 3) % 44), { fit: 'fill' });
    const name = `img/v${String(i).padStart(4, '0')}.${i % 2 === 0 ? 'png' : 'jpg'}`;
    jobs.push((i % 2 === 0 ? img.png() : img.jpeg({ quality: 85 })).toFile(join(root, name)));
    paths.push(name);
    if (jobs.length >= 16) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  return paths;
}

function csvField(v: string): string {
  return /[",\n\r]/.test(v) || v === '' ? `"${v.replace(/"/g, '""')}"` : v;
}

export async function writeFilterDataset(
  dir: string,
  options: { images?: number; captionsPerImage?: number; formats?: ('csv' | 'jsonl' | 'parquet' | 'webdataset')[] } = {},
): Promise<FilterDataset> {
  const formats = new Set(options.formats ?? ['csv', 'jsonl', 'parquet', 'webdataset']);
  const imageRoot = join(dir, 'root');
  const count = options.images ?? 320;
  const per = options.captionsPerImage ?? 6.5;
  const variants = await writeVariants(imageRoot, count);
  writeFileSync(join(imageRoot, 'img', 'corrupt.jpg'), Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(300, 7)]));
  const rows: DatasetRow[] = [];
  const total = Math.ceil(count * per);
  for (let k = 0; k < total; k++) {
    rows.push({ id: `r${k}`, image: variants[Math.floor(k / per)], caption: caption(k), bad: null });
  }
  // Bad rows spread over the file (and so over units and shards).
  const bad: [DatasetRow['bad'], Partial<DatasetRow>][] = [
    ['missing', { image: 'img/does-not-exist.png' }], ['corrupt', { image: 'img/corrupt.jpg' }],
    ['empty', { caption: '' }], ['nul', { caption: 'a cat\u0000 on a mat' }],
  ];
  for (let b = 0; b < 8; b++) {
    const [kind, patch] = bad[b % bad.length];
    const at = Math.floor(((b + 1) * rows.length) / 9);
    rows.splice(at, 0, { id: `bad${b}`, image: variants[b], caption: caption(10_000 + b), bad: kind, ...patch });
  }

  // CSV in two files (a glob and row numbers across files), JSONL in one.
  const half = Math.floor(rows.length / 2);
  const csv = [join(dir, 'data-a.csv'), join(dir, 'data-b.csv')];
  [rows.slice(0, half), rows.slice(half)].forEach((part, i) => {
    if (formats.has('csv')) writeFileSync(csv[i], `id,image,caption\n${part.map((r) => [r.id, r.image, r.caption].map(csvField).join(',')).join('\n')}\n`);
  });
  const jsonl = join(dir, 'data.jsonl');
  if (formats.has('jsonl')) writeFileSync(jsonl, rows.map((r) => JSON.stringify({ id: r.id, image: r.image, caption: r.caption })).join('\n') + '\n');

  // Parquet with the image bytes in a BLOB column, as img2dataset writes them (a missing file has no bytes: null).
  const parquet = join(dir, 'data.parquet');
  const shards = [join(dir, 'shard-000000.tar'), join(dir, 'shard-000001.tar')];
  if (formats.has('parquet')) await writeParquet(parquet, rows, imageRoot);
  if (formats.has('webdataset')) await writeShards(shards, [rows.slice(0, half), rows.slice(half)], imageRoot);
  return { dir, imageRoot, rows, images: count, csv, jsonl, parquet, shards };
}

async function writeParquet(parquet: string, rows: DatasetRow[], imageRoot: string): Promise<void> {
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  await conn.run('CREATE TABLE t (id VARCHAR, image BLOB, caption VARCHAR, width INTEGER)');
  const appender = await conn.createAppender('t');
  for (const r of rows) {
    appender.appendVarchar(r.id);
    if (r.bad === 'missing') appender.appendNull();
    else appender.appendBlob(readFileSync(join(imageRoot, r.image)));
    appender.appendVarchar(r.caption);
    appender.appendInteger(r.caption.length);
    appender.endRow();
  }
  appender.flushSync();
  appender.closeSync();
  await conn.run(`COPY t TO '${parquet.replace(/'/g, "''")}' (FORMAT parquet)`);
  conn.closeSync();
  instance.closeSync();
}

/** WebDataset: key = id, .jpg/.png + .txt (a missing image: no image member). */
async function writeShards(shards: string[], parts: DatasetRow[][], imageRoot: string): Promise<void> {
  for (const [i, part] of parts.entries()) {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    const done = (async () => { for await (const c of pack) chunks.push(c as Buffer); })();
    for (const r of part) {
      if (r.bad !== 'missing') {
        const ext = r.image.endsWith('.png') ? 'png' : 'jpg';
        pack.entry({ name: `${r.id}.${ext}` }, readFileSync(join(imageRoot, r.image)));
      }
      pack.entry({ name: `${r.id}.txt` }, Buffer.from(r.caption, 'utf8'));
    }
    pack.finalize();
    await done;
    writeFileSync(shards[i], Buffer.concat(chunks));
  }
}
