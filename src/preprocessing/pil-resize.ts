/**
 * A TypeScript port of Pillow 9.4's `ImagingResample` (src/libImaging/Resample.c) for 8-bit
 * interleaved images, so that `Image.resize(size, resample)` (reducing_gap=None, no box) is reproduced
 * bit for bit. The algorithm, in Pillow's order:
 *
 * 1. For each output column (then row) compute filter weights over the input pixels within
 *    `support * max(scale, 1)` of the output pixel's centre (the filter is stretched when shrinking, which
 *    is the antialiasing), normalise them to sum 1 (in double), and convert them to fixed point with
 *    PRECISION_BITS = 32 - 8 - 2 = 22 fractional bits, rounding half away from zero.
 * 2. Horizontal pass first, only over the input rows the vertical pass will read, into an 8-bit
 *    intermediate image; then the vertical pass. A pass is skipped when that dimension is unchanged.
 * 3. Each output sample is `clip8((1 << 21) + sum(pixel * coeff) >> 22)`, i.e. round-half-up then
 *    clamp to 0..255 (Pillow's clip8 lookup table).
 *
 * All the arithmetic here is exact in JS doubles (|sums| < 2^31), so results equal the C code's.
 * NEAREST (0) is not part of ImagingResample in Pillow (it goes through an affine transform) and is not
 * supported here.
 */

/** PIL's resampling constants, as stored in `preprocessor_config.json` "resample". */
export const PIL_NEAREST = 0;
export const PIL_LANCZOS = 1;
export const PIL_BILINEAR = 2;
export const PIL_BICUBIC = 3;
export const PIL_BOX = 4;
export const PIL_HAMMING = 5;

interface Filter {
  name: string;
  support: number;
  fn: (x: number) => number;
}

const M_PI = Math.PI;
// Hamming uses float literals (0.54f, 0.46f) promoted to double in C.
const F054 = Math.fround(0.54);
const F046 = Math.fround(0.46);

function sinc(x: number): number {
  if (x === 0.0) return 1.0;
  const y = x * M_PI;
  return Math.sin(y) / y;
}

const FILTERS: Record<number, Filter> = {
  [PIL_BOX]: { name: 'box', support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
  [PIL_BILINEAR]: {
    name: 'bilinear',
    support: 1.0,
    fn: (x) => {
      if (x < 0.0) x = -x;
      return x < 1.0 ? 1.0 - x : 0.0;
    },
  },
  [PIL_HAMMING]: {
    name: 'hamming',
    support: 1.0,
    fn: (x) => {
      if (x < 0.0) x = -x;
      if (x === 0.0) return 1.0;
      if (x >= 1.0) return 0.0;
      const y = x * M_PI;
      return (Math.sin(y) / y) * (F054 + F046 * Math.cos(y));
    },
  },
  [PIL_BICUBIC]: {
    name: 'bicubic',
    support: 2.0,
    // Keys cubic convolution with a = -0.5, written exactly as Pillow evaluates it.
    fn: (x) => {
      const a = -0.5;
      if (x < 0.0) x = -x;
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    },
  },
  [PIL_LANCZOS]: {
    name: 'lanczos',
    support: 3.0,
    fn: (x) => (-3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0),
  },
};

/** Whether `resample` is a PIL filter this module implements (everything except NEAREST). */
export function isSupportedResample(resample: number): boolean {
  return Object.prototype.hasOwnProperty.call(FILTERS, resample);
}

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Per-output-pixel integer coefficients: window start, window length, `ksize` coefficient slots each. */
interface Coeffs {
  ksize: number;
  /** First input index of each output pixel's window. */
  start: Int32Array;
  /** Number of input pixels in each window. */
  count: Int32Array;
  /** Fixed-point coefficients, `ksize` per output pixel. */
  k: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc, for box [0, inSize]. */
function precomputeCoeffs(inSize: number, outSize: number, filter: Filter): Coeffs {
  // in0/in1 are C floats in Pillow; 0 and inSize are exact in float for any realistic size.
  const in0 = 0;
  const in1 = Math.fround(inSize);
  const scale = (in1 - in0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    // C's (int) truncates toward zero; negative values are clamped to 0 right after anyway.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const v = filter.fn((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0.0 ? w[x] / ww : w[x];
      // (int)(v * 2^22 -/+ 0.5): round half away from zero, via truncation as in C.
      k[base + x] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { ksize, start, count, k };
}

/** clip8(ss): Pillow's lookup of `ss >> 22` in a table that clamps to 0..255. */
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over input rows [rowFirst, rowFirst + rows), into a `outW x rows` image. */
function resampleHorizontal(
  src: Uint8Array, inW: number, channels: number, rowFirst: number, rows: number, outW: number, c: Coeffs,
): Uint8Array {
  const out = new Uint8Array(outW * rows * channels);
  const { ksize, start, count, k } = c;
  const inStride = inW * channels;
  const outStride = outW * channels;
  for (let yy = 0; yy < rows; yy++) {
    const rowBase = (yy + rowFirst) * inStride;
    const outBase = yy * outStride;
    for (let xx = 0; xx < outW; xx++) {
      const n = count[xx];
      const kb = xx * ksize;
      let p = rowBase + start[xx] * channels;
      if (channels === 3) {
        let s0 = HALF, s1 = HALF, s2 = HALF;
        for (let x = 0; x < n; x++, p += 3) {
          const kv = k[kb + x];
          s0 += src[p] * kv;
          s1 += src[p + 1] * kv;
          s2 += src[p + 2] * kv;
        }
        const o = outBase + xx * 3;
        out[o] = clip8(s0);
        out[o + 1] = clip8(s1);
        out[o + 2] = clip8(s2);
      } else {
        for (let ch = 0; ch < channels; ch++) {
          let s = HALF;
          for (let x = 0; x < n; x++) s += src[p + x * channels + ch] * k[kb + x];
          out[outBase + xx * channels + ch] = clip8(s);
        }
      }
    }
  }
  return out;
}

/** Vertical pass; `c.start` is relative to the first row of `src`. */
function resampleVertical(
  src: Uint8Array, width: number, channels: number, outH: number, c: Coeffs, rowOffset: number,
): Uint8Array {
  const stride = width * channels;
  const out = new Uint8Array(stride * outH);
  const { ksize, start, count, k } = c;
  for (let yy = 0; yy < outH; yy++) {
    const n = count[yy];
    const kb = yy * ksize;
    const first = (start[yy] - rowOffset) * stride;
    const outBase = yy * stride;
    for (let i = 0; i < stride; i++) {
      let s = HALF;
      let p = first + i;
      for (let y = 0; y < n; y++, p += stride) s += src[p] * k[kb + y];
      out[outBase + i] = clip8(s);
    }
  }
  return out;
}

/**
 * Resizes an interleaved 8-bit image (any channel count, every channel filtered independently: right
 * for RGB and grey; PIL premultiplies RGBA first, which this does not do) to `outW x outH` exactly as
 * Pillow 9.4's `Image.resize((outW, outH), resample)` does. Returns a new buffer, or a copy when the
 * size is unchanged (as Pillow does).
 */
export function pilResize(
  src: Uint8Array, inW: number, inH: number, channels: number, outW: number, outH: number, resample: number = PIL_BICUBIC,
): Uint8Array {
  const filter = FILTERS[resample];
  if (!filter) {
    throw new RangeError(
      `unsupported PIL resample filter ${resample} (supported: 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming; 0 nearest is not)`,
    );
  }
  for (const [name, v] of [['inW', inW], ['inH', inH], ['outW', outW], ['outH', outH], ['channels', channels]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  }
  if (src.length !== inW * inH * channels) {
    throw new RangeError(`source has ${src.length} bytes, expected ${inW}x${inH}x${channels}`);
  }
  const needH = outW !== inW;
  const needV = outH !== inH;
  if (!needH && !needV) return src.slice();

  // Vertical coefficients first: they decide which input rows the horizontal pass must produce.
  const vert = precomputeCoeffs(inH, outH, filter);
  const rowFirst = vert.start[0];
  const rowLast = vert.start[outH - 1] + vert.count[outH - 1];

  let img = src;
  let width = inW;
  let rowOffset = 0;
  if (needH) {
    const horiz = precomputeCoeffs(inW, outW, filter);
    img = resampleHorizontal(src, inW, channels, rowFirst, rowLast - rowFirst, outW, horiz);
    width = outW;
    rowOffset = rowFirst;
  }
  if (!needV) return img;
  return resampleVertical(img, width, channels, outH, vert, rowOffset);
}
