import { CheckpointError } from '../errors.js';
import { derivedName } from '../checkpoint/derived-names.js';
import type { Dtype } from '../checkpoint/dtype.js';
import { toHalfBits } from '../checkpoint/half.js';
import type { TensorIndex, TensorInfo } from '../checkpoint/tensor-info.js';
import {
  type AttributeValue, DataType, encodeModel, type GraphProto, type NodeProto, type TensorProto, type ValueInfo,
} from './onnx-proto.js';

export const MS_DOMAIN = 'com.microsoft';
const ONNX_OPSET = 17;

const CHECKPOINT_DTYPES: Partial<Record<TensorInfo['dtype'], DataType>> = {
  F32: DataType.FLOAT, F16: DataType.FLOAT16, BF16: DataType.BFLOAT16, F64: DataType.DOUBLE,
};

/**
 * A built graph plus what ORT needs to resolve its external data: every weight points into
 * files of one folder, which becomes the session's external-initializer folder. (ORT refuses
 * absolute external-data paths and paths that leave that folder, symlinks resolved.)
 */
export interface BuiltGraph {
  name: string;
  bytes: Uint8Array;
  weightsFolder: string | undefined;
  /**
   * float16 weights feeding float32 arithmetic through Casts (fp16 on CPU), widened per call just
   * before the operator that reads them (see GraphBuilder.widenPerCall).
   */
  castsWeights?: boolean;
  /** Whether activations (and so the cross-attention key/value inputs and outputs) are float16. */
  halfActivations?: boolean;
  /** Checkpoint tensors referenced, for tests and for diagnostics. */
  externalTensors: Array<{ name: string; location: string; offset: number; length: number }>;
}

/**
 * Builds one ONNX graph node by node. Value names are generated; callers pass them around as
 * plain strings, which keeps the model code close to the PyTorch forward() it mirrors.
 */
export class GraphBuilder {
  private nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly weightCache = new Map<string, string>();
  private readonly initializerNames = new Set<string>();
  private readonly constCache = new Map<string, string>();
  private readonly external: BuiltGraph['externalTensors'] = [];
  private weightsFolder: string | undefined;
  private counter = 0;
  private usesMsDomain = false;
  /** Element type of activations: float16 for dtype fp16 (unless asked for float32), else float32. */
  readonly float: DataType;
  private castsWeights = false;
  /**
   * fp16 weights with float32 activations (CPU): each weight stays float16 in memory and is widened
   * to float32 per call, after the activation its operator reads exists. A Cast of an initializer
   * alone would either be folded at load (float32 copies of every weight: fp32's memory) or, kept,
   * run before everything else since it depends on nothing (all float32 copies alive at once,
   * 2.4 GB for the large model). Reading the weight through a Reshape whose shape is computed from
   * the activation's dynamic batch size gives the Cast a data dependency that neither constant
   * folding nor the scheduler can remove, so only the weights of the operators in flight are
   * float32 at any time.
   */
  private readonly widenPerCall: boolean;
  private gateCache = new Map<string, string>();
  /**
   * Linears as MatMul with the weight transposed once at load (constant-folded), instead of
   * com.microsoft.FusedMatMul reading it transposed in place: GPU providers lack FusedMatMul
   * (WebGPU leaves every one of them to the CPU), and MatMul is an ONNX standard operator.
   */
  matmulLinears = false;
  /**
   * A weight file's real path (symbolic links resolved): ORT refuses external data that leaves
   * the folder it is given, and the Hub cache's model files are links into its blob store.
   * Node passes realpathSync (graph/precision.ts); the browser's weight "files" are plain names.
   */
  realPath: (file: string) => string = (file) => file;

  /**
   * `dtype` fp32 reads `weights` (the checkpoint) in place; fp16 and int8 ask it for derived
   * tensors (`f16:`, `f32:`, `q8t:`, `q8s:` names, see checkpoint/derived-weights.ts).
   * `activations` 'fp32' with dtype fp16 keeps float16 weights but computes in float32, for
   * execution providers without float16 kernels (onnxruntime's CPU provider on x86).
   */
  constructor(
    readonly name: string,
    private readonly weights: TensorIndex,
    private readonly checkpointLabel: string,
    readonly dtype: Dtype = 'fp32',
    activations: 'fp16' | 'fp32' = dtype === 'fp16' ? 'fp16' : 'fp32',
  ) {
    this.float = activations === 'fp16' ? DataType.FLOAT16 : DataType.FLOAT;
    this.widenPerCall = dtype === 'fp16' && this.float === DataType.FLOAT;
  }

  input(name: string, elemType: DataType, shape: Array<number | string>): string {
    this.inputs.push({ name, elemType, shape });
    return name;
  }

  /** Exposes `value` as a graph output called `name`. */
  output(value: string, name: string, elemType: DataType, shape: Array<number | string>): void {
    this.op('Identity', [value], {}, [name]);
    this.outputs.push({ name, elemType, shape });
  }

  /**
   * A checkpoint tensor in the activation type, referenced in place (no copy of the bytes).
   * `after`: the activation the reading operator takes; a float16 weight that feeds float32
   * arithmetic is widened only once that exists (see widenPerCall); without it, once at load.
   * `float32`: in fp16 with float32 activations (CPU), keep this tensor in float32, as mixed
   * precision keeps LayerNorm parameters and position tables (see derivedKind).
   */
  weight(tensorName: string, expectShape?: number[], options: { after?: string; float32?: boolean } = {}): string {
    if (this.dtype === 'fp32') return this.externalWeight(tensorName, tensorName, expectShape);
    return this.externalWeight(derivedName(this.derivedKind(tensorName, options.float32 ?? false), tensorName), tensorName, expectShape, options.after);
  }

  /**
   * `use(table)` applied to a lookup table (Gather, Slice), the result then in the activation
   * type: a float16 table is widened row by row after the lookup, never as a whole.
   */
  rowsOf(tensorName: string, expectShape: number[], use: (table: string) => string, options: { float32?: boolean } = {}): string {
    const float32 = options.float32 ?? false;
    if (this.derivedKind(tensorName, float32) !== 'f16' || !this.widenPerCall) return use(this.weight(tensorName, expectShape, { float32 }));
    const table = this.externalWeight(derivedName('f16', tensorName), tensorName, expectShape, undefined, true);
    return this.op('Cast', [use(table)], { to: this.float });
  }

  /**
   * fp16 stores weights as float16, except, with float32 activations (CPU), the tensors its
   * callers mark `float32` (LayerNorm parameters, position and class embeddings), as PyTorch's
   * autocast does: on the tiny-384 fixture rounding just the LayerNorm parameters moved ITM margins
   * by up to 7e-3 and swapped two captions 2e-4 apart (README, "Precision").
   * They are under 0.5% of the large model's weights. A checkpoint that already stores them as
   * float16 is read as it is. GPU providers keep float16: their LayerNormalization takes its
   * parameters in the activation type.
   */
  private derivedKind(tensorName: string, float32: boolean): 'f16' | 'f32' {
    if (this.dtype !== 'fp16') return 'f32';
    return float32 && this.widenPerCall && this.weights.get(tensorName)?.dtype !== 'F16' ? 'f32' : 'f16';
  }

  /** A linear's int8 weight as [in, out] and its per-output-channel float32 scales. */
  protected quantizedWeight(prefix: string, inFeatures: number, outFeatures: number): [string, string] {
    const source = `${prefix}.weight`;
    return [
      this.externalWeight(derivedName('q8t', source), source, [inFeatures, outFeatures]),
      this.externalWeight(derivedName('q8s', source), source, [outFeatures]),
    ];
  }

  private externalWeight(lookupName: string, tensorName: string, expectShape?: number[], after?: string, stored = false): string {
    const gated = this.widenPerCall && after !== undefined;
    const cacheKey = stored ? `stored:${lookupName}` : gated ? `${lookupName}@${after}` : lookupName;
    const cached = this.weightCache.get(cacheKey);
    if (cached) return cached;
    const info = this.weights.get(lookupName);
    if (!info) throw new CheckpointError(this.checkpointLabel, `missing weight "${tensorName}"; is this a BlipForImageTextRetrieval checkpoint?`);
    if (expectShape && (expectShape.length !== info.shape.length || expectShape.some((d, i) => d !== info.shape[i]))) {
      throw new CheckpointError(
        this.checkpointLabel,
        `weight "${tensorName}" has shape [${info.shape}] but config.json implies [${expectShape}]`,
      );
    }
    const dataType = info.dtype === 'I8' ? DataType.INT8 : CHECKPOINT_DTYPES[info.dtype];
    if (dataType === undefined) throw new CheckpointError(info.file, `weight "${tensorName}" has dtype ${info.dtype}; expected a floating-point type`);

    const { folder, location } = splitPath(this.realPath(info.file));
    if (this.weightsFolder === undefined) this.weightsFolder = folder;
    else if (this.weightsFolder !== folder) {
      throw new CheckpointError(info.file, `weight files must all lie in one folder (found ${this.weightsFolder} and ${folder})`);
    }
    const initName = `w:${lookupName}`;
    if (!this.initializerNames.has(initName)) {
      this.initializerNames.add(initName);
      this.initializers.push({
        name: initName, dataType, dims: info.shape, external: { location, offset: info.offset, length: info.length },
      });
      this.external.push({ name: lookupName, location, offset: info.offset, length: info.length });
    }
    // Quantized weights and their scales are the operator's own types; float weights are cast to
    // the activation type when the checkpoint stores another one (bf16, fp64).
    const keep = stored || dataType === this.float || dataType === DataType.INT8 || lookupName.startsWith('q8s:');
    let value = initName;
    if (!keep && dataType === DataType.FLOAT16 && gated) {
      value = this.op('Cast', [this.op('Reshape', [initName, this.sameShapeAfter(after, info.shape.length)])], { to: this.float });
    } else if (!keep) {
      value = this.op('Cast', [initName], { to: this.float });
    }
    if (!keep && dataType === DataType.FLOAT16) this.castsWeights = true;
    this.weightCache.set(cacheKey, value);
    return value;
  }

  /**
   * A Reshape shape of `rank` zeros ("keep this dimension") computed from `x`'s batch size, which
   * is dynamic in every graph here, so it is known only once `x` is.
   */
  private sameShapeAfter(x: string, rank: number): string {
    const key = `${x}:${rank}`;
    const cached = this.gateCache.get(key);
    if (cached) return cached;
    const zero = this.op('Mul', [this.op('Shape', [x], { start: 0, end: 1 }), this.constInt64([0])]);
    const shape = rank === 1 ? zero : this.op('Expand', [zero, this.constInt64([rank])]);
    this.gateCache.set(key, shape);
    return shape;
  }

  constInt64(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims}:${values}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const raw = new Uint8Array(new BigInt64Array(values.map(BigInt)).buffer);
    const name = `c${this.counter++}`;
    this.initializers.push({ name, dataType: DataType.INT64, dims, raw });
    this.constCache.set(key, name);
    return name;
  }

  /** A constant in the activation type, or in `type` (FLOAT / FLOAT16). */
  constFloat(values: number[], dims: number[] = [], type: DataType = this.float): string {
    const key = `${type}:${dims}:${values}`;
    const cached = this.constCache.get(key);
    if (cached) return cached;
    const raw = type === DataType.FLOAT16
      ? new Uint8Array(Uint16Array.from(values, toHalfBits).buffer)
      : new Uint8Array(new Float32Array(values).buffer);
    const name = `c${this.counter++}`;
    this.initializers.push({ name, dataType: type, dims, raw });
    this.constCache.set(key, name);
    return name;
  }

  /** `x` (in the activation type) as float32; exact for float16. */
  toFloat32(x: string): string {
    return this.float === DataType.FLOAT ? x : this.op('Cast', [x], { to: DataType.FLOAT });
  }

  /** `x` (in the activation type) as float16 when dtype is fp16; float16 activations pass through. */
  toHalf(x: string): string {
    return this.dtype === 'fp16' && this.float === DataType.FLOAT ? this.op('Cast', [x], { to: DataType.FLOAT16 }) : x;
  }

  /** A value made by toHalf, back in the activation type. */
  fromHalf(x: string): string {
    return this.dtype === 'fp16' && this.float === DataType.FLOAT ? this.op('Cast', [x], { to: this.float }) : x;
  }

  /** A float32 value in the activation type. */
  fromFloat32(x: string): string {
    return this.float === DataType.FLOAT ? x : this.op('Cast', [x], { to: this.float });
  }

  /** Adds a node; returns its first output. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}, outputs?: string[], domain?: string): string {
    return this.opMulti(opType, inputs, attributes, outputs ?? 1, domain)[0];
  }

  opMulti(opType: string, inputs: string[], attributes: Record<string, AttributeValue>, outputs: string[] | number, domain?: string): string[] {
    const names = typeof outputs === 'number' ? Array.from({ length: outputs }, () => `v${this.counter++}`) : outputs;
    if (domain === MS_DOMAIN) this.usesMsDomain = true;
    this.nodes.push({ opType, inputs, outputs: names, name: `n${this.nodes.length}_${opType}`, domain, attributes });
    return names;
  }

  /**
   * A branch graph for If/Loop: `build` adds nodes that may read any value of the enclosing
   * graph (weights included: they stay single initializers of the main graph) and returns the
   * values that become the branch's outputs.
   */
  subgraph(name: string, build: () => string[]): GraphProto {
    const outer = this.nodes;
    const outerGates = this.gateCache;
    this.nodes = [];
    // Gate shapes computed inside the branch are not visible outside it.
    this.gateCache = new Map(outerGates);
    try {
      const results = build();
      const outputs = results.map((value, i) => {
        const outName = `${name}_out${i}_${this.counter++}`;
        this.nodes.push({ opType: 'Identity', inputs: [value], outputs: [outName], name: `${name}_out${i}` });
        return { name: outName, elemType: this.float };
      });
      return { name, nodes: this.nodes, initializers: [], inputs: [], outputs };
    } finally {
      this.nodes = outer;
      this.gateCache = outerGates;
    }
  }

  build(): BuiltGraph {
    const opsets = [{ domain: '', version: ONNX_OPSET }];
    if (this.usesMsDomain) opsets.push({ domain: MS_DOMAIN, version: 1 });
    const bytes = encodeModel({
      producerName: 'blip-itm',
      producerVersion: '1',
      opsets,
      graph: { name: this.name, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs },
    });
    return { name: this.name, bytes, weightsFolder: this.weightsFolder, externalTensors: this.external, castsWeights: this.castsWeights,
      halfActivations: this.float === DataType.FLOAT16 };
  }
}

/**
 * node:path's dirname and basename of a file path, without node:path (graph code runs in browsers
 * too). A backslash separates only in Windows paths (drive letter first); on POSIX it is a name character.
 */
function splitPath(file: string): { folder: string; location: string } {
  const windows = /^[A-Za-z]:\\/.test(file);
  const i = windows ? Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\')) : file.lastIndexOf('/');
  if (i < 0) return { folder: '.', location: file };
  const head = file.slice(0, i);
  // A root keeps its separator: "/x" lies in "/", "C:\x" in "C:\".
  const folder = head === '' || (windows && head.length === 2) ? file.slice(0, i + 1) : head;
  return { folder, location: file.slice(i + 1) };
}
