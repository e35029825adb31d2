import { GraphBuilder, MS_DOMAIN } from './builder.js';
import { DataType, FloatAttr } from './onnx-proto.js';
import { quantizesLinear } from './quantization-policy.js';

/**
 * The layers the vision and text towers share, on top of GraphBuilder's graph assembly and weight
 * references: linears (float, or int8 DynamicQuantizeMatMul), LayerNorm, activations, attention.
 */
export class LayerBuilder extends GraphBuilder {

  /** x @ W^T + b with PyTorch's [out, in] weight layout, which FusedMatMul reads transposed in place. */
  /** Whether the linear `prefix` runs in int8 (quantization-policy.ts). */
  private quantizes(prefix: string): boolean {
    return this.dtype === 'int8' && quantizesLinear(prefix);
  }

  linear(x: string, prefix: string, inFeatures: number, outFeatures: number, bias = true): string {
    if (this.quantizes(prefix)) {
      // Activations are quantized per call (uint8, asymmetric) by the operator itself; the
      // weights are signed int8 per output channel, which runs about 1.9x faster than uint8 weights.
      const [q, scale] = this.quantizedWeight(prefix, inFeatures, outFeatures);
      const inputs = bias ? [x, q, scale, '', this.weight(`${prefix}.bias`, [outFeatures], { after: x })] : [x, q, scale];
      return this.op('DynamicQuantizeMatMul', inputs, {}, undefined, MS_DOMAIN);
    }
    const w = this.weight(`${prefix}.weight`, [outFeatures, inFeatures], { after: x });
    if (this.matmulLinears) {
      const y = this.op('MatMul', [x, this.op('Transpose', [w], { perm: [1, 0] })]);
      return bias ? this.op('Add', [y, this.weight(`${prefix}.bias`, [outFeatures], { after: x })]) : y;
    }
    const y = this.op('FusedMatMul', [x, w], { transA: 0, transB: 1, alpha: new FloatAttr(1) }, undefined, MS_DOMAIN);
    return bias ? this.op('Add', [y, this.weight(`${prefix}.bias`, [outFeatures], { after: x })]) : y;
  }

  /**
   * BlipAttention with one packed qkv projection (rows: query, key, value), on `x` [B, S, hidden];
   * returns the heads merged, [B, S, hidden], scaled by head_dim^-0.5 as the vision tower does.
   *
   * When the projection is int8 it runs as `com.microsoft.QAttention`: the input quantized per call
   * (uint8, per tensor: what DynamicQuantizeMatMul does inside), the qkv weights signed int8 per
   * output column, the attention products and softmax float32 with the operator's default scale,
   * 1/sqrt(head_dim). The same numbers as the float path below with an int8 linear, but each head's
   * q, k and v are written in place instead of reshaped, transposed and split: 7% less int8 vision
   * time here (docs/performance.md).
   */
  packedSelfAttention(x: string, prefix: string, hidden: number, heads: number): string {
    if (this.quantizes(prefix)) {
      const [q, scale] = this.quantizedWeight(prefix, hidden, 3 * hidden);
      const [xq, xScale, xZero] = this.opMulti('DynamicQuantizeLinear', [x], {}, 3);
      const bias = this.weight(`${prefix}.bias`, [3 * hidden], { after: x });
      return this.op('QAttention', [xq, q, bias, xScale, scale, '', xZero], { num_heads: heads }, undefined, MS_DOMAIN);
    }
    const headDim = hidden / heads;
    const qkv = this.linear(x, prefix, hidden, 3 * hidden);
    const split = this.op('Transpose', [this.op('Reshape', [qkv, this.constInt64([0, -1, 3, heads, headDim])])], { perm: [2, 0, 3, 1, 4] });
    const [q, k, v] = [0, 1, 2].map((j) => this.op('Gather', [split, this.constInt64([j], [])], { axis: 0 }));
    const kT = this.op('Transpose', [k], { perm: [0, 1, 3, 2] });
    return this.mergeHeads(this.attention(q, kT, v, { mul: headDim ** -0.5 }), hidden);
  }

  layerNorm(x: string, prefix: string, size: number, epsilon: number): string {
    return this.op('LayerNormalization', [x, this.weight(`${prefix}.weight`, [size], { after: x, float32: true }), this.weight(`${prefix}.bias`, [size], { after: x, float32: true })], {
      axis: -1, epsilon: new FloatAttr(epsilon),
    });
  }

  activation(x: string, kind: 'gelu' | 'relu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'quick_gelu'): string {
    switch (kind) {
      case 'gelu': {
        // Exact erf GELU as torch.nn.functional.gelu; ORT fuses this pattern into its Gelu kernel.
        const erf = this.op('Erf', [this.op('Div', [x, this.constFloat([Math.SQRT2])])]);
        const onePlus = this.op('Add', [erf, this.constFloat([1])]);
        return this.op('Mul', [this.op('Mul', [x, onePlus]), this.constFloat([0.5])]);
      }
      case 'relu':
        return this.op('Relu', [x]);
      case 'quick_gelu':
        return this.op('Mul', [x, this.op('Sigmoid', [this.op('Mul', [x, this.constFloat([1.702])])])]);
      case 'gelu_new':
      case 'gelu_pytorch_tanh': {
        const cube = this.op('Mul', [this.op('Mul', [x, x]), x]);
        const inner = this.op('Mul', [this.op('Add', [x, this.op('Mul', [cube, this.constFloat([0.044715])])]), this.constFloat([Math.sqrt(2 / Math.PI)])]);
        const t = this.op('Add', [this.op('Tanh', [inner]), this.constFloat([1])]);
        return this.op('Mul', [this.op('Mul', [x, t]), this.constFloat([0.5])]);
      }
    }
  }

  /** [B, S, heads*dim] -> [B, heads, S, dim] */
  splitHeads(x: string, heads: number, headDim: number): string {
    const r = this.op('Reshape', [x, this.constInt64([0, -1, heads, headDim])]);
    return this.op('Transpose', [r], { perm: [0, 2, 1, 3] });
  }

  /** [B, heads, S, dim] -> [B, S, heads*dim] */
  mergeHeads(x: string, hidden: number): string {
    const t = this.op('Transpose', [x], { perm: [0, 2, 1, 3] });
    return this.op('Reshape', [t, this.constInt64([0, -1, hidden])]);
  }

  /**
   * softmax(q k^T scaled + mask) v, heads already split. `kT` is the key already transposed
   * to [B, heads, dim, S_k]; a batch of 1 broadcasts against any query batch (one image's
   * keys serve many captions without being copied). The vision tower multiplies by
   * head_dim^-0.5 and the text tower divides by sqrt(head_dim), as their PyTorch code does.
   */
  attention(q: string, kT: string, v: string, scaling: { mul: number } | { div: number }, additiveMask?: string): string {
    const raw = this.op('MatMul', [q, kT]);
    let scores = 'mul' in scaling
      ? this.op('Mul', [raw, this.constFloat([scaling.mul])])
      : this.op('Div', [raw, this.constFloat([scaling.div])]);
    if (additiveMask) scores = this.op('Add', [scores, additiveMask]);
    return this.op('MatMul', [this.op('Softmax', [scores], { axis: -1 }), v]);
  }

  /**
   * F.normalize(x, dim=-1): x / max(||x||_2, 1e-12), always in float32 (the result is float32):
   * in float16 the sum of squares overflows once |x| averages about 16 over 256 features, and
   * 1e-12 is below float16's smallest subnormal.
   */
  l2Normalize(x: string): string {
    const xf = this.toFloat32(x);
    const norm = this.op('ReduceL2', [xf], { axes: [-1], keepdims: 1 });
    return this.op('Div', [xf, this.op('Max', [norm, this.constFloat([1e-12], [], DataType.FLOAT)])]);
  }

  /** x[:, index, :] for a [B, S, D] tensor. */
  selectToken(x: string, index: number): string {
    return this.op('Gather', [x, this.constInt64([index], [])], { axis: 1 });
  }
}
