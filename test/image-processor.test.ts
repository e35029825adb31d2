import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, readTensorData, type SafetensorsFile } from '../src/checkpoint/safetensors.js';
import { CheckpointError, ImageError } from '../src/errors.js';
import { FileError } from '../src/io/files.js';
import { decodeImage, type RgbImage } from '../src/preprocessing/image-decode.js';
import { BlipImageProcessor, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from '../src/preprocessing/image-processor.js';
import { PIL_BICUBIC, PIL_BILINEAR, pilResize } from '../src/preprocessing/pil-resize.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const IMAGES = join(FIXTURES, 'images');
const GOLDENS = join(FIXTURES, 'goldens', 'image_processor.safetensors');
const SIZES = [32, 224, 384] as const;

interface ImageEntry {
  file: string;
  mode: string;
  width: number;
  height: number;
  pil_convert_rgb_sha256: string;
}

const entries: ImageEntry[] = (JSON.parse(await readFile(join(IMAGES, 'images.json'), 'utf8')) as { images: ImageEntry[] }).images;
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
/** The 1x1 image's goldens were made with input_data_format="channels_last" (see image-processor.ts). */
const goldenKey = (kind: 'resized_u8' | 'pixel_values', size: number, file: string): string =>
  `${kind}@${size}/${file}${file === 'syn_1x1.png' ? ':channels_last' : ''}`;

let goldens: SafetensorsFile;
const decoded = new Map<string, RgbImage>();

before(async () => {
  goldens = await readSafetensors(GOLDENS);
});

async function golden<T>(name: string): Promise<T> {
  const info = goldens.tensors.get(name);
  assert.ok(info, `golden ${name} missing`);
  return (await readTensorData(info)) as T;
}

function countDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** A minimal PNG writer, to build bit depths and colour types the fixtures do not cover. */
function crc32(buf: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of buf) {
    let c = (crc ^ b) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
function pngChunk(type: string, data: Uint8Array): Buffer {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0);
  b.write(type, 4, 'ascii');
  b.set(data, 8);
  b.writeUInt32BE(crc32(b.subarray(4, 8 + data.length)), 8 + data.length);
  return b;
}
function makePng(width: number, depth: number, colourType: number, row: number[], extra: Buffer[] = []): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(1, 4);
  ihdr[8] = depth;
  ihdr[9] = colourType;
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    pngChunk('IHDR', ihdr),
    ...extra,
    pngChunk('IDAT', deflateSync(Buffer.from([0, ...row]))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('decodeImage matches PIL Image.open(f).convert("RGB")', () => {
  for (const e of entries) {
    test(`${e.file} (${e.mode} ${e.width}x${e.height})`, async () => {
      const rgb = await decodeImage(join(IMAGES, e.file));
      assert.equal(rgb.width, e.width);
      assert.equal(rgb.height, e.height);
      assert.equal(rgb.data.length, e.width * e.height * 3);
      assert.equal(sha256(rgb.data), e.pil_convert_rgb_sha256);
      decoded.set(e.file, rgb);
    });
  }

  test('a Buffer and a Uint8Array view give the same pixels as the path', async () => {
    const bytes = await readFile(join(IMAGES, 'syn_cats_q90.jpg'));
    const padded = new Uint8Array(bytes.length + 7);
    padded.set(bytes, 7);
    const a = await decodeImage(bytes);
    const b = await decodeImage(padded.subarray(7));
    const want = entries.find((e) => e.file === 'syn_cats_q90.jpg')!.pil_convert_rgb_sha256;
    assert.equal(sha256(a.data), want);
    assert.equal(sha256(b.data), want);
  });

  test('transparent pixels keep their stored colour (no compositing)', async () => {
    const rgb = await decodeImage(join(IMAGES, 'syn_chelsea_rgba.png'));
    const at = (x: number, y: number) => Array.from(rgb.data.subarray((y * rgb.width + x) * 3, (y * rgb.width + x) * 3 + 3));
    assert.deepEqual(at(10, 10), [250, 20, 30]);
    assert.deepEqual(at(59, 59), [250, 20, 30]);
  });

  test('a CMYK JPEG without an Adobe marker is still read inverted, as PIL does', async () => {
    const bytes = await readFile(join(IMAGES, 'syn_cats_cmyk.jpg'));
    // Drop the APP14 segment (FF EE, length 14, transform 0): the stored samples are unchanged, and PIL
    // (which assumes Adobe inversion for every CMYK JPEG) gives the same pixels.
    const at = bytes.indexOf(Buffer.from([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65]));
    assert.ok(at > 0);
    const len = bytes.readUInt16BE(at + 2);
    const stripped = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 2 + len)]);
    const rgb = await decodeImage(stripped);
    assert.equal(sha256(rgb.data), entries.find((e) => e.file === 'syn_cats_cmyk.jpg')!.pil_convert_rgb_sha256);
  });

  // Expected values follow Pillow's PNG modes and unpackers: 1/2/4-bit grey scaled to 0..255; 16-bit
  // grey opened as mode "I" and clipped by convert("RGB") (tRNS or not); 16-bit RGB, RGBA and grey+alpha
  // keep the high byte; tRNS colour keys and palette transparency ignored.
  const pngCases: Array<[string, Buffer, number[]]> = [
    ['1-bit grey', makePng(3, 1, 0, [0b10100000]), [255, 0, 255]],
    ['2-bit grey', makePng(3, 2, 0, [0b00011011]), [0, 85, 170]],
    ['4-bit grey', makePng(4, 4, 0, [0x01, 0x2f]), [0, 17, 34, 255]],
    ['16-bit grey (mode I, clipped)', makePng(3, 16, 0, [0x00, 0x10, 0x00, 0xff, 0x01, 0x00]), [16, 255, 255]],
    ['16-bit grey + tRNS (still mode I)', makePng(3, 16, 0, [0x00, 0x10, 0x00, 0xff, 0x01, 0x00], [pngChunk('tRNS', Buffer.from([0, 0x10]))]), [16, 255, 255]],
    ['16-bit grey+alpha (high byte)', makePng(2, 16, 4, [0x12, 0xff, 0, 0, 0x00, 0xc8, 0xff, 0xff]), [0x12, 0]],
    ['8-bit grey + tRNS', makePng(2, 8, 0, [5, 9], [pngChunk('tRNS', Buffer.from([0, 5]))]), [5, 9]],
  ];
  for (const [name, bytes, grey] of pngCases) {
    test(`PNG ${name}`, async () => {
      const rgb = await decodeImage(bytes);
      assert.deepEqual(Array.from(rgb.data), grey.flatMap((v) => [v, v, v]));
    });
  }
  test('PNG 16-bit RGB/RGBA keep the high byte; RGB tRNS and palette tRNS are ignored', async () => {
    const rgb16 = [0x12, 0xff, 0x80, 0x01, 0x00, 0xff];
    assert.deepEqual(Array.from((await decodeImage(makePng(1, 16, 2, rgb16))).data), [0x12, 0x80, 0]);
    assert.deepEqual(Array.from((await decodeImage(makePng(1, 16, 6, [...rgb16, 0, 0]))).data), [0x12, 0x80, 0]);
    const keyed = makePng(1, 8, 2, [1, 2, 3], [pngChunk('tRNS', Buffer.from([0, 1, 0, 2, 0, 3]))]);
    assert.deepEqual(Array.from((await decodeImage(keyed)).data), [1, 2, 3]);
    const pal = makePng(2, 8, 3, [0, 1], [pngChunk('PLTE', Buffer.from([10, 20, 30, 40, 50, 60])), pngChunk('tRNS', Buffer.from([0]))]);
    assert.deepEqual(Array.from((await decodeImage(pal)).data), [10, 20, 30, 40, 50, 60]);
  });

  test('lossless TIFF, AVIF and WebP decode to the exact pixels; GIF decodes', async () => {
    const src = await decodeImage(join(IMAGES, 'syn_cats_q90.jpg'));
    const base = sharp(Buffer.from(src.data), { raw: { width: src.width, height: src.height, channels: 3 } });
    for (const bytes of [
      await base.clone().tiff({ compression: 'deflate' }).toBuffer(),
      await base.clone().avif({ lossless: true }).toBuffer(),
      await base.clone().webp({ lossless: true }).toBuffer(),
    ]) {
      const out = await decodeImage(bytes);
      assert.equal(countDiff(out.data, src.data), 0);
    }
    // GIF is palette-quantised on writing, so only the shape can be checked.
    const gif = await decodeImage(await base.clone().gif().toBuffer());
    assert.deepEqual([gif.width, gif.height, gif.data.length], [src.width, src.height, src.data.length]);
  });

  test('raw pixel input: RGB passes through, grey and RGBA are converted like PIL', async () => {
    const rgb = await decodeImage({ data: new Uint8Array([1, 2, 3, 4, 5, 6]), width: 2, height: 1, channels: 3 });
    assert.deepEqual(Array.from(rgb.data), [1, 2, 3, 4, 5, 6]);
    const grey = await decodeImage({ data: new Uint8Array([7, 9]), width: 1, height: 2, channels: 1 });
    assert.deepEqual(Array.from(grey.data), [7, 7, 7, 9, 9, 9]);
    const rgba = await decodeImage({ data: new Uint8Array([250, 20, 30, 0]), width: 1, height: 1, channels: 4 });
    assert.deepEqual(Array.from(rgba.data), [250, 20, 30]);
    await assert.rejects(
      decodeImage({ data: new Uint8Array(5), width: 2, height: 1, channels: 3 }),
      (e: unknown) => e instanceof ImageError && /<raw 2x1x3 pixels>/.test(e.message) && /expected/.test(e.message),
    );
  });
});

describe('BlipImageProcessor matches transformers BlipImageProcessor (PIL bicubic)', () => {
  const processors = new Map(SIZES.map((s) => [s, new BlipImageProcessor({ size: { height: s, width: s } })]));

  for (const e of entries) {
    test(`${e.file}: resized uint8 at ${SIZES.join('/')} and available pixel_values`, async () => {
      const rgb = decoded.get(e.file) ?? (await decodeImage(join(IMAGES, e.file)));
      for (const s of SIZES) {
        const proc = processors.get(s)!;
        const resized = proc.resizeToUint8(rgb);
        assert.equal(resized.width, s);
        assert.equal(resized.height, s);
        const want = await golden<Uint8Array>(goldenKey('resized_u8', s, e.file));
        assert.equal(countDiff(resized.data, want), 0, `resized_u8@${s} differs`);

        const pvName = goldenKey('pixel_values', s, e.file);
        if (goldens.tensors.has(pvName)) {
          const pv = await proc.preprocess([join(IMAGES, e.file)]);
          assert.deepEqual(pv.dims, [1, 3, s, s]);
          const wantPv = await golden<Float32Array>(pvName);
          assert.equal(maxAbsDiff(pv.data, wantPv), 0, `pixel_values@${s} differs`);
        }
      }
    });
  }

  test('a batch stacks images in order (the tiny-384 model inputs)', async () => {
    const files = ['coco_000000039769.png', 'skimage_chelsea.png', 'skimage_rocket.jpg'];
    const proc = await BlipImageProcessor.fromFile(join(FIXTURES, 'reference-configs', 'blip-itm-large-coco.preprocessor_config.json'));
    const pv = await proc.preprocess(files.map((f) => join(IMAGES, f)));
    assert.deepEqual(pv.dims, [3, 3, 384, 384]);
    const per = 3 * 384 * 384;
    for (let i = 0; i < files.length; i++) {
      const want = await golden<Float32Array>(`pixel_values@384/${files[i]}`);
      assert.equal(maxAbsDiff(pv.data.subarray(i * per, (i + 1) * per), want), 0, files[i]);
    }
  });

  test('fromFile reads the tiny model config (size 32) and the real checkpoint config', async () => {
    const tiny = await BlipImageProcessor.fromFile(join(FIXTURES, 'models', 'tiny', 'preprocessor_config.json'));
    assert.deepEqual(tiny.size, { height: 32, width: 32 });
    const real = await BlipImageProcessor.fromFile(join(FIXTURES, 'reference-configs', 'blip-itm-large-coco.preprocessor_config.json'));
    assert.deepEqual(real.config, {
      doResize: true, height: 384, width: 384, resample: PIL_BICUBIC, doRescale: true, rescaleFactor: 0.00392156862745098,
      doNormalize: true, imageMean: [...OPENAI_CLIP_MEAN], imageStd: [...OPENAI_CLIP_STD], doConvertRgb: true,
    });
    const pv = await tiny.preprocess([join(IMAGES, 'syn_cats.webp'), join(IMAGES, 'syn_cats_cmyk.jpg')]);
    assert.deepEqual(pv.dims, [2, 3, 32, 32]);
    const per = 3 * 32 * 32;
    assert.equal(maxAbsDiff(pv.data.subarray(0, per), await golden<Float32Array>('pixel_values@32/syn_cats.webp')), 0);
    assert.equal(maxAbsDiff(pv.data.subarray(per), await golden<Float32Array>('pixel_values@32/syn_cats_cmyk.jpg')), 0);
  });

  test('defaults are transformers\' (384, bicubic, 1/255, CLIP mean/std) and size may be an int', () => {
    const p = new BlipImageProcessor();
    assert.deepEqual(p.size, { height: 384, width: 384 });
    assert.equal(p.config.rescaleFactor, 1 / 255);
    assert.deepEqual(new BlipImageProcessor({ size: 224 }).size, { height: 224, width: 224 });
    assert.deepEqual(new BlipImageProcessor({ size: { shortest_edge: 64 } }).size, { height: 64, width: 64 });
  });

  test('a 1-pixel-high image is processed (transformers fails on it; we do not copy that bug)', async () => {
    const raw = { data: new Uint8Array([200, 100, 50, 200, 100, 50]), width: 2, height: 1, channels: 3 as const };
    const proc = processors.get(32)!;
    const pv = await proc.preprocess([raw]);
    // A constant image resizes to the same constant, so it must equal the 1x1 golden.
    assert.equal(maxAbsDiff(pv.data, await golden<Float32Array>('pixel_values@32/syn_1x1.png:channels_last')), 0);
  });

  test('rescale and normalise follow numpy float32 rounding step by step', async () => {
    const raw = { data: new Uint8Array([0, 128, 255]), width: 1, height: 1, channels: 3 as const };
    const pv = await new BlipImageProcessor({ size: 1 }).preprocess([raw]);
    for (let c = 0; c < 3; c++) {
      const x = Math.fround(raw.data[c] * (1 / 255));
      assert.equal(pv.data[c], Math.fround(Math.fround(x - Math.fround(OPENAI_CLIP_MEAN[c])) / Math.fround(OPENAI_CLIP_STD[c])));
    }
    const plain = await new BlipImageProcessor({ size: 1, do_normalize: false, do_rescale: false }).preprocess([raw]);
    assert.deepEqual(Array.from(plain.data), [0, 128, 255]);
  });

  test('do_resize false keeps the size and requires equal sizes in a batch', async () => {
    const proc = new BlipImageProcessor({ do_resize: false });
    const pv = await proc.preprocess([join(IMAGES, 'syn_cats_q90.jpg'), join(IMAGES, 'syn_cats.webp')]);
    assert.deepEqual(pv.dims, [2, 3, 240, 320]);
    await assert.rejects(
      proc.preprocess([join(IMAGES, 'syn_cats_q90.jpg'), join(IMAGES, 'syn_1x1.png')]),
      (e: unknown) => e instanceof ImageError && e.message.includes('syn_1x1.png'),
    );
  });

  test('an empty batch gives an empty tensor', async () => {
    const pv = await processors.get(32)!.preprocess([]);
    assert.deepEqual(pv.dims, [0, 3, 32, 32]);
    assert.equal(pv.data.length, 0);
  });
});

describe('pilResize', () => {
  test('big 3000x2000 image to 384 is fast', async () => {
    const rgb = decoded.get('syn_big_3000x2000.jpg') ?? (await decodeImage(join(IMAGES, 'syn_big_3000x2000.jpg')));
    const t0 = performance.now();
    const out = pilResize(rgb.data, rgb.width, rgb.height, 3, 384, 384, PIL_BICUBIC);
    const ms = performance.now() - t0;
    assert.equal(out.length, 384 * 384 * 3);
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  });

  test('same size returns an equal copy', () => {
    const src = new Uint8Array([1, 2, 3, 4, 5, 6]);
    const out = pilResize(src, 2, 1, 3, 2, 1);
    assert.deepEqual(out, src);
    assert.notEqual(out, src);
  });

  test('bilinear halving averages with round-half-up', () => {
    // Shrinking 2 -> 1: both inputs weigh 0.5 (2^21 in fixed point); (2^21 + 101 * 2^21) >> 22 = 51 (50.5 up).
    assert.deepEqual(Array.from(pilResize(new Uint8Array([0, 101]), 2, 1, 1, 1, 1, PIL_BILINEAR)), [51]);
    assert.deepEqual(Array.from(pilResize(new Uint8Array([0, 100]), 2, 1, 1, 1, 1, PIL_BILINEAR)), [50]);
    const proc = new BlipImageProcessor({ size: 16, resample: 2 });
    assert.equal(proc.config.resample, PIL_BILINEAR);
  });

  test('bicubic overshoot is clipped to 0..255', () => {
    // A hard edge upscaled: the cubic rings beyond the input range and must clip.
    const src = new Uint8Array([0, 0, 255, 255]);
    const out = pilResize(src, 4, 1, 1, 13, 1, PIL_BICUBIC);
    assert.ok(out.every((v) => v >= 0 && v <= 255));
    assert.equal(out[0], 0);
    assert.equal(out[12], 255);
  });

  test('nearest and unknown filters are refused', () => {
    assert.throws(() => pilResize(new Uint8Array(3), 1, 1, 3, 2, 2, 0), RangeError);
    assert.throws(() => pilResize(new Uint8Array(3), 1, 1, 3, 2, 2, 9), RangeError);
  });
});

describe('errors name the input', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blip-itm-image-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const rejectsImageError = async (p: Promise<unknown>, mentions: string, problem?: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof ImageError, `expected ImageError, got ${String(e)}`);
      assert.ok(e.message.includes(mentions), `message "${e.message}" should name ${mentions}`);
      if (problem) assert.match(e.message, problem);
      return true;
    });
  };

  test('nonexistent path', async () => {
    const p = join(dir, 'does-not-exist.jpg');
    await rejectsImageError(decodeImage(p), p, /not found/);
  });

  test('a directory', async () => {
    await rejectsImageError(decodeImage(dir), dir);
  });

  test('zero-byte file and empty buffer', async () => {
    const p = join(dir, 'empty.png');
    await writeFile(p, new Uint8Array(0));
    await rejectsImageError(decodeImage(p), p, /empty/);
    await rejectsImageError(decodeImage(new Uint8Array(0)), '<buffer of 0 bytes>', /empty/);
  });

  for (const file of ['syn_cats_q90.jpg', 'syn_cats_progressive.jpg', 'coco_000000039769.png', 'syn_cats.webp']) {
    test(`truncated ${file} (first half)`, async () => {
      const bytes = await readFile(join(IMAGES, file));
      const p = join(dir, `half-${file}`);
      await writeFile(p, bytes.subarray(0, bytes.length >> 1));
      await rejectsImageError(decodeImage(p), p);
      await rejectsImageError(decodeImage(bytes.subarray(0, bytes.length >> 1)), `<buffer of ${bytes.length >> 1} bytes>`);
    });
  }

  test('random bytes', async () => {
    const bytes = new Uint8Array(4096);
    let s = 12345;
    for (let i = 0; i < bytes.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      bytes[i] = s >>> 24;
    }
    const p = join(dir, 'random.jpg');
    await writeFile(p, bytes);
    await rejectsImageError(decodeImage(p), p, /not a readable image/);
    await rejectsImageError(decodeImage(bytes), '<buffer of 4096 bytes>');
  });

  test('a text file', async () => {
    const p = join(dir, 'notes.png');
    await writeFile(p, 'this is a text file, not an image\n');
    await rejectsImageError(decodeImage(p), p, /not a readable image/);
  });

  test('SVG (which PIL cannot open) is refused', async () => {
    const p = join(dir, 'drawing.svg');
    await writeFile(p, '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    await rejectsImageError(decodeImage(p), p, /unsupported image format "svg"/);
  });

  test('an image over the pixel limit is refused from its header', async () => {
    const p = join(IMAGES, 'coco_000000039769.png');
    await rejectsImageError(decodeImage(p, { maxPixels: 640 * 480 - 1 }), p, /640x480 = 307200 pixels, over the limit of 307199/);
    assert.equal((await decodeImage(p, { maxPixels: 640 * 480 })).width, 640);
    await rejectsImageError(
      new BlipImageProcessor({ size: 32 }).preprocess([p], { maxPixels: 1000 }),
      p,
      /over the limit/,
    );
  });

  test('a failing image in a batch rejects cleanly, with custom labels', async () => {
    const proc = new BlipImageProcessor({ size: 32 });
    const good = join(IMAGES, 'syn_cats_q90.jpg');
    const missing = join(dir, 'missing.png');
    await rejectsImageError(proc.preprocess([missing, good, good]), missing);
    await rejectsImageError(proc.preprocess([good, missing, good]), missing);
    await rejectsImageError(
      proc.preprocess([good, new Uint8Array([1, 2, 3])], { labels: ['first', 'https://example.com/x.jpg'] }),
      'https://example.com/x.jpg',
    );
  });
});

describe('preprocessor config errors', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'blip-itm-config-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const bad = async (name: string, text: string, problem: RegExp): Promise<void> => {
    const p = join(dir, name);
    await writeFile(p, text);
    await assert.rejects(BlipImageProcessor.fromFile(p), (e: unknown) => {
      // CheckpointError for bad values; FileError (also a BlipError) for what io/files refuses.
      assert.ok(e instanceof CheckpointError || e instanceof FileError, `expected CheckpointError or FileError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`${p}: `), e.message);
      assert.match(e.message, problem);
      return true;
    });
  };

  test('missing file', async () => {
    const p = join(dir, 'nope.json');
    await assert.rejects(BlipImageProcessor.fromFile(p), (e: unknown) => e instanceof FileError && e.message.includes(p));
  });
  test('bad JSON', () => bad('a.json', '{"size": ', /not valid JSON/));
  test('not an object', () => bad('b.json', '[1, 2]', /JSON object/));
  test('bad size', () => bad('c.json', '{"size": {"height": 0, "width": 384}}', /size\.height/));
  test('bad size form', () => bad('d.json', '{"size": {"longest_edge": 384}}', /"size"/));
  test('nearest resample', () => bad('e.json', '{"resample": 0}', /nearest/));
  test('unknown resample', () => bad('f.json', '{"resample": 7}', /resample/));
  test('mean of the wrong length', () => bad('g.json', '{"image_mean": [0.5, 0.5]}', /image_mean/));
  test('zero std', () => bad('h.json', '{"image_std": [0.2, 0, 0.2]}', /image_std/));
  test('non-boolean flag', () => bad('i.json', '{"do_resize": "yes"}', /do_resize/));
  test('other processor type', () => bad('j.json', '{"image_processor_type": "CLIPImageProcessor"}', /CLIPImageProcessor/));
});
