import { CheckpointError, ImageError } from '../errors.js';
import type { DecodeOptions, RgbImage } from './rgb-image.js';
import { PIL_BICUBIC, PIL_NEAREST, isSupportedResample, pilResize } from './pil-resize.js';

/**
 * Port of transformers 4.40.2 `BlipImageProcessor.preprocess` (with PIL 9.4 underneath):
 *
 *   convert("RGB") -> resize to height x width with PIL `resample` (no aspect ratio kept, no crop)
 *   -> float32(u8 * rescale_factor) -> (x - float32 mean) / float32 std, in float32 -> channels first.
 *
 * The float steps reproduce numpy exactly: `uint8_array * python_float` is computed in float64 and then
 * cast to float32; mean/std are cast to float32 (np.array(mean, dtype=image.dtype)) and the subtraction
 * and division are float32 operations. Each is mirrored with Math.fround (a float64 op on two float32
 * values rounded once to float32 is exactly the float32 op).
 *
 * Deliberate difference from the Python code: transformers guesses the channel layout of the decoded
 * array, and an H x W x 3 image whose height is 1 (or 3) is taken as channels-first. A 1-pixel-high image
 * then fails ("mean must have 1 elements if it is an iterable, got 3") and a 3-pixel-high one is silently
 * mangled. We know our layout is always H x W x 3, so we process such images correctly; the fixture
 * goldens for syn_1x1.png (suffix ":channels_last") were made with input_data_format="channels_last",
 * i.e. they are these correct values.
 */

/** OPENAI_CLIP_MEAN / OPENAI_CLIP_STD from transformers.image_utils. */
export const OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711] as const;

/** The resolved preprocessor settings (defaults as in BlipImageProcessor.__init__). */
export interface BlipImageProcessorConfig {
  doResize: boolean;
  height: number;
  width: number;
  /** PIL resampling filter constant (3 = bicubic). */
  resample: number;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  /** Always effectively true here: inputs are decoded to RGB whatever this says (see constructor). */
  doConvertRgb: boolean;
}

export interface PreprocessOptions extends Pick<DecodeOptions, 'maxPixels'> {
  /** Names for the inputs in error messages, parallel to `inputs`. */
  labels?: string[];
}

/** A batch of pixel values, NCHW float32 (row-major). */
export interface PixelValues {
  data: Float32Array;
  dims: [number, number, number, number];
}

const SOURCE_DEFAULT = '<preprocessor config>';

/**
 * The platform-neutral processor; `I` is what a platform's decoder takes (Node: paths, bytes or raw
 * pixels, decoded by sharp; browser: bytes, Blobs or URLs). Subclasses supply the decoder.
 */
export abstract class BlipImageProcessorBase<I> {
  readonly config: Readonly<BlipImageProcessorConfig>;
  /** Per channel, the float32 output for each of the 256 uint8 input values. */
  private readonly lut: Float32Array[];

  /**
   * @param json a parsed `preprocessor_config.json` (unknown keys such as do_pad, size_divisor are ignored)
   * @param source the file it came from, for error messages
   */
  constructor(json: Record<string, unknown> = {}, source: string = SOURCE_DEFAULT) {
    this.config = parseConfig(json, source);
    this.lut = buildLuts(this.config);
  }

  /** Output height and width (after resizing). */
  get size(): { height: number; width: number } {
    return { height: this.config.height, width: this.config.width };
  }

  /** The resize step alone: the uint8 H x W x 3 image the Python processor has just before rescaling. */
  resizeToUint8(rgb: RgbImage): RgbImage {
    const { doResize, height, width, resample } = this.config;
    if (!doResize) return rgb;
    return { data: pilResize(rgb.data, rgb.width, rgb.height, 3, width, height, resample), width, height };
  }

  /**
   * Rescales and normalises an RGB uint8 image (already resized) into `out` at `offset`, channels first
   * (3 x H x W).
   */
  writePixelValues(rgb: RgbImage, out: Float32Array, offset = 0): void {
    const n = rgb.width * rgb.height;
    const src = rgb.data;
    for (let c = 0; c < 3; c++) {
      const lut = this.lut[c];
      const base = offset + c * n;
      for (let i = 0; i < n; i++) out[base + i] = lut[src[3 * i + c]];
    }
  }

  /** Decodes one input to RGB as PIL's `convert("RGB")` (the platform's part). */
  protected abstract decode(input: I, options: DecodeOptions): Promise<RgbImage>;

  /** How an input is named in error messages. */
  protected abstract describe(input: I): string;

  /**
   * Decodes, resizes, rescales and normalises a batch. Returns NCHW float32 `pixel_values`
   * (dims [N, 3, height, width]). Images are decoded one ahead of the one being resized, so the
   * decoder's threads (sharp's, the browser's) overlap with the (synchronous) resize without
   * holding the whole batch in memory.
   */
  async preprocess(inputs: I[], opts: PreprocessOptions = {}): Promise<PixelValues> {
    const list = Array.isArray(inputs) ? inputs : [inputs as I];
    const labelOf = (i: number): string => opts.labels?.[i] ?? this.describe(list[i]);
    const decode = (i: number): Promise<RgbImage> => this.decode(list[i], { maxPixels: opts.maxPixels, label: labelOf(i) });

    let h = this.config.height;
    let w = this.config.width;
    let data = new Float32Array(0);
    let next: Promise<RgbImage> | undefined = list.length > 0 ? decode(0) : undefined;
    for (let i = 0; i < list.length; i++) {
      const current = next!;
      next = i + 1 < list.length ? decode(i + 1) : undefined;
      // If we throw before awaiting the prefetch, its rejection must not surface as unhandled.
      next?.catch(() => undefined);
      const resized = this.resizeToUint8(await current);
      if (i === 0) {
        // Without resizing, the batch takes the first image's size and the others must match it.
        h = resized.height;
        w = resized.width;
        data = new Float32Array(list.length * 3 * h * w);
      } else if (resized.height !== h || resized.width !== w) {
        throw new ImageError(
          labelOf(i),
          `is ${resized.width}x${resized.height} but the first image is ${w}x${h}; with do_resize false all images in a batch must have the same size`,
        );
      }
      this.writePixelValues(resized, data, i * 3 * h * w);
    }
    return { data, dims: [list.length, 3, h, w] };
  }
}

function buildLuts(cfg: BlipImageProcessorConfig): Float32Array[] {
  const luts: Float32Array[] = [];
  for (let c = 0; c < 3; c++) {
    const lut = new Float32Array(256);
    const mean = Math.fround(cfg.imageMean[c]);
    const std = Math.fround(cfg.imageStd[c]);
    for (let v = 0; v < 256; v++) {
      // numpy: (uint8 * float64 scalar) -> float64, then .astype(float32).
      let x = cfg.doRescale ? Math.fround(v * cfg.rescaleFactor) : v;
      if (cfg.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      lut[v] = x;
    }
    luts.push(lut);
  }
  return luts;
}

function parseConfig(json: Record<string, unknown>, source: string): BlipImageProcessorConfig {
  const fail = (problem: string): never => {
    throw new CheckpointError(source, problem);
  };
  const bool = (key: string, dflt: boolean): boolean => {
    const v = json[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') fail(`"${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };
  const finite = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`"${key}" must be a finite number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const dim = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > 65536) {
      fail(`"${key}" must be a positive integer (at most 65536), got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  const triple = (key: string, dflt: readonly number[], positive: boolean): [number, number, number] => {
    const v = json[key];
    let arr: number[];
    if (v === undefined || v === null) arr = [...dflt];
    else if (typeof v === 'number') arr = [v, v, v]; // a scalar applies to every channel, as in transformers
    else if (Array.isArray(v) && v.length === 3) arr = v.map((x, i) => finite(`${key}[${i}]`, x));
    else return fail(`"${key}" must be a number or a list of 3 numbers (one per RGB channel), got ${JSON.stringify(v)}`);
    arr.forEach((x, i) => {
      finite(`${key}[${i}]`, x);
      if (positive && !(x > 0)) fail(`"${key}" values must be > 0, got ${x}`);
    });
    return arr as [number, number, number];
  };

  const type = json.image_processor_type;
  if (type !== undefined && (typeof type !== 'string' || !type.startsWith('BlipImageProcessor'))) {
    fail(`image_processor_type is ${JSON.stringify(type)}; only BlipImageProcessor is supported`);
  }

  // transformers' get_size_dict(size, default_to_square=True).
  let height = 384;
  let width = 384;
  const size = json.size;
  if (size === undefined || size === null) {
    // default {"height": 384, "width": 384}
  } else if (typeof size === 'number') {
    height = width = dim('size', size);
  } else if (Array.isArray(size)) {
    if (size.length !== 2) fail(`"size" as a list must be [height, width], got ${JSON.stringify(size)}`);
    height = dim('size[0]', size[0]);
    width = dim('size[1]', size[1]);
  } else if (typeof size === 'object') {
    const s = size as Record<string, unknown>;
    if (s.height !== undefined || s.width !== undefined) {
      height = dim('size.height', s.height);
      width = dim('size.width', s.width);
    } else if (s.shortest_edge !== undefined && s.longest_edge === undefined) {
      // transformers' BlipImageProcessor.resize would reject this form; BLIP is square, so read it as S x S.
      height = width = dim('size.shortest_edge', s.shortest_edge);
    } else {
      fail(`"size" must have "height" and "width", got ${JSON.stringify(size)}`);
    }
  } else {
    fail(`"size" must be an integer or {"height", "width"}, got ${JSON.stringify(size)}`);
  }

  let resample = PIL_BICUBIC;
  if (json.resample !== undefined && json.resample !== null) {
    const r = json.resample;
    if (typeof r !== 'number' || !Number.isInteger(r)) fail(`"resample" must be a PIL filter number, got ${JSON.stringify(r)}`);
    if (r === PIL_NEAREST) fail('"resample" 0 (nearest) is not supported; use 3 (bicubic, as BLIP does) or 2 (bilinear)');
    if (!isSupportedResample(r as number)) {
      fail(`"resample" ${r} is not a PIL filter (1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)`);
    }
    resample = r as number;
  }

  const rescaleFactor = json.rescale_factor === undefined || json.rescale_factor === null
    ? 1 / 255
    : finite('rescale_factor', json.rescale_factor);

  return {
    doResize: bool('do_resize', true),
    height,
    width,
    resample,
    doRescale: bool('do_rescale', true),
    rescaleFactor,
    doNormalize: bool('do_normalize', true),
    imageMean: triple('image_mean', OPENAI_CLIP_MEAN, false),
    imageStd: triple('image_std', OPENAI_CLIP_STD, true),
    // We always hand the pipeline RGB (the decoder converts), which is what do_convert_rgb=true does; with
    // false, transformers would feed L/RGBA arrays through and fail on the 3-channel mean, so there is no
    // useful behaviour to copy.
    doConvertRgb: bool('do_convert_rgb', true),
  };
}
