/**
 * Just enough of the ONNX protobuf schema (onnx.proto, proto2) to serialise the models we
 * build. Writing the few messages by hand keeps a 300 KB protobuf runtime out of the package
 * and makes the byte layout of external-data initializers explicit.
 */

export enum DataType {
  FLOAT = 1, UINT8 = 2, INT8 = 3, UINT16 = 4, INT16 = 5, INT32 = 6, INT64 = 7,
  BOOL = 9, FLOAT16 = 10, DOUBLE = 11, BFLOAT16 = 16,
}

export type AttributeValue = number | bigint | string | number[] | TensorProto | FloatAttr | { floats: number[] } | { graph: GraphProto };

export interface ExternalData {
  /** Path relative to the .onnx file's folder. */
  location: string;
  offset: number;
  length: number;
}

export interface TensorProto {
  name: string;
  dataType: DataType;
  dims: number[];
  /** Little-endian element bytes, for small constants built in code. */
  raw?: Uint8Array;
  /** Weights that stay in the checkpoint file. */
  external?: ExternalData;
}

export interface NodeProto {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  domain?: string;
  attributes?: Record<string, AttributeValue>;
}

export interface ValueInfo {
  name: string;
  elemType: DataType;
  /** number = fixed size, string = symbolic dimension; undefined = rank unknown. */
  shape?: Array<number | string>;
}

export interface GraphProto {
  name: string;
  nodes: NodeProto[];
  initializers: TensorProto[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

export interface ModelProto {
  graph: GraphProto;
  opsets: Array<{ domain: string; version: number }>;
  producerName: string;
  producerVersion: string;
  metadata?: Record<string, string>;
}

/** Growable byte sink with protobuf's wire encodings. */
class Writer {
  private buf = new Uint8Array(1024);
  private len = 0;

  private ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + extra) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  varint(value: number | bigint): void {
    // Negative int64 values are encoded as 10-byte two's complement varints.
    let v = BigInt.asUintN(64, BigInt(value));
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  bytes(field: number, data: Uint8Array): void {
    this.tag(field, 2);
    this.varint(data.length);
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  string(field: number, s: string): void {
    this.bytes(field, new TextEncoder().encode(s));
  }

  int(field: number, v: number | bigint): void {
    this.tag(field, 0);
    this.varint(v);
  }

  float(field: number, v: number): void {
    this.tag(field, 5);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.len, v, true);
    this.len += 4;
  }

  message(field: number, write: (w: Writer) => void): void {
    const inner = new Writer();
    write(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

function writeTensor(w: Writer, t: TensorProto): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const entries: Array<[string, string]> = [
      ['location', t.external.location],
      ['offset', String(t.external.offset)],
      ['length', String(t.external.length)],
    ];
    for (const [k, v] of entries) {
      w.message(13, (e) => {
        e.string(1, k);
        e.string(2, v);
      });
    }
    w.int(14, 1); // data_location = EXTERNAL
  }
}

// AttributeProto.AttributeType values.
const ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_TENSOR = 4, ATTR_GRAPH = 5, ATTR_FLOATS = 6, ATTR_INTS = 7;

function writeAttribute(w: Writer, name: string, value: AttributeValue): void {
  w.string(1, name);
  if (typeof value === 'number') {
    if (Number.isInteger(value) && !Object.is(value, -0)) {
      // Integral numbers are INT attributes, as in onnx.helper; an integral float needs FloatAttr.
      w.int(3, value);
      w.int(20, ATTR_INT);
    } else {
      w.float(2, value);
      w.int(20, ATTR_FLOAT);
    }
  } else if (typeof value === 'bigint') {
    w.int(3, value);
    w.int(20, ATTR_INT);
  } else if (typeof value === 'string') {
    w.string(4, value);
    w.int(20, ATTR_STRING);
  } else if (value instanceof FloatAttr) {
    w.float(2, value.value);
    w.int(20, ATTR_FLOAT);
  } else if (Array.isArray(value)) {
    for (const v of value) w.int(8, v);
    w.int(20, ATTR_INTS);
  } else if ('graph' in value) {
    w.message(6, (g) => writeGraph(g, value.graph));
    w.int(20, ATTR_GRAPH);
  } else if ('floats' in value) {
    for (const v of value.floats) w.float(7, v);
    w.int(20, ATTR_FLOATS);
  } else {
    w.message(5, (t) => writeTensor(t, value));
    w.int(20, ATTR_TENSOR);
  }
}

/** A float-typed attribute even when the value is integral (e.g. alpha = 1). */
export class FloatAttr {
  constructor(readonly value: number) {}
}

function writeNode(w: Writer, n: NodeProto): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) {
    w.message(5, (a) => writeAttribute(a, k, v));
  }
  if (n.domain) w.string(7, n.domain);
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) => {
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      if (v.shape) {
        const dims = v.shape;
        tensor.message(2, (shape) => {
          for (const d of dims) {
            shape.message(1, (dim) => {
              if (typeof d === 'number') dim.int(1, d);
              else dim.string(2, d);
            });
          }
        });
      }
    });
  });
}

function writeGraph(g: Writer, graph: GraphProto): void {
  for (const n of graph.nodes) g.message(1, (m) => writeNode(m, n));
  g.string(2, graph.name);
  for (const t of graph.initializers) g.message(5, (m) => writeTensor(m, t));
  for (const v of graph.inputs) g.message(11, (m) => writeValueInfo(m, v));
  for (const v of graph.outputs) g.message(12, (m) => writeValueInfo(m, v));
}

export function encodeModel(model: ModelProto): Uint8Array {
  const w = new Writer();
  w.int(1, 8); // ir_version 8 (ONNX 1.10+): opset 17 and external data are both covered.
  w.string(2, model.producerName);
  w.string(3, model.producerVersion);
  w.message(7, (g) => writeGraph(g, model.graph));
  for (const op of model.opsets) {
    w.message(8, (m) => {
      m.string(1, op.domain);
      m.int(2, op.version);
    });
  }
  for (const [k, v] of Object.entries(model.metadata ?? {})) {
    w.message(14, (m) => {
      m.string(1, k);
      m.string(2, v);
    });
  }
  return w.finish();
}
