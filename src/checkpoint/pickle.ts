import { CheckpointError } from '../errors.js';
import {
  describe,
  printable,
  PyDict,
  PyFloat,
  PyGlobal,
  type PyKey,
  PyTuple,
  type PyValue,
  TorchStorage,
  TorchTensor,
} from './pickle-values.js';
import type { TensorDType } from './tensor-info.js';

export { describe, PyDict, PyFloat, PyGlobal, type PyKey, PyTuple, type PyValue, TorchStorage, TorchTensor } from './pickle-values.js';

/**
 * A restricted unpickler for the `data.pkl` record of a `torch.save(state_dict)` archive.
 *
 * It never runs code: it interprets only the opcodes a tensor state dict needs, resolves only an
 * allowlist of globals to inert descriptors (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
 * the typed `torch.*Storage` classes), and "calls" only those, itself. Any other global — `os.system`,
 * `builtins.eval`, `torch.storage._load_from_bytes`, a model class — is refused by name, and so is any
 * opcode outside the supported set (NEWOBJ, INST, OBJ, EXT*, PERSID, ...).
 *
 * Memory stays bounded by the size of the pickle: every string or integer length is checked against
 * the bytes left before anything is allocated, each opcode pushes at most one value, MARK nesting is
 * capped, and nothing here recurses over the values it builds.
 */

// ---------------------------------------------------------------------------------------------
// Allowlist

export const STORAGE_DTYPES: Readonly<Record<string, TensorDType>> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const ORDERED_DICT = 'collections.OrderedDict';
const REBUILD_TENSOR_V2 = 'torch._utils._rebuild_tensor_v2';

function isAllowedGlobal(module: string, name: string): boolean {
  if (module === 'collections' && name === 'OrderedDict') return true;
  if (module === 'torch._utils' && name === '_rebuild_tensor_v2') return true;
  if (module === 'torch' && Object.hasOwn(STORAGE_DTYPES, name)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Opcodes

const OP = {
  MARK: 0x28, EMPTY_TUPLE: 0x29, STOP: 0x2e, BINFLOAT: 0x47, BININT: 0x4a, BININT1: 0x4b, BININT2: 0x4d,
  NONE: 0x4e, BINPERSID: 0x51, REDUCE: 0x52, BINUNICODE: 0x58, EMPTY_LIST: 0x5d, APPEND: 0x61, BUILD: 0x62,
  GLOBAL: 0x63, APPENDS: 0x65, BINGET: 0x68, LONG_BINGET: 0x6a, BINPUT: 0x71, LONG_BINPUT: 0x72,
  SETITEM: 0x73, TUPLE: 0x74, SETITEMS: 0x75, EMPTY_DICT: 0x7d, PROTO: 0x80, TUPLE1: 0x85, TUPLE2: 0x86,
  TUPLE3: 0x87, NEWTRUE: 0x88, NEWFALSE: 0x89, LONG1: 0x8a, SHORT_BINUNICODE: 0x8c, BINUNICODE8: 0x8d,
  STACK_GLOBAL: 0x93, MEMOIZE: 0x94, FRAME: 0x95,
} as const;

/** Names of every pickle opcode, for messages about the ones we refuse. */
const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x28: 'MARK', 0x29: 'EMPTY_TUPLE', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x46: 'FLOAT', 0x47: 'BINFLOAT', 0x49: 'INT', 0x4a: 'BININT', 0x4b: 'BININT1', 0x4c: 'LONG',
  0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE', 0x53: 'STRING',
  0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x5d: 'EMPTY_LIST',
  0x61: 'APPEND', 0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT', 0x72: 'LONG_BINPUT',
  0x73: 'SETITEM', 0x74: 'TUPLE', 0x75: 'SETITEMS', 0x7d: 'EMPTY_DICT', 0x80: 'PROTO', 0x81: 'NEWOBJ',
  0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2', 0x87: 'TUPLE3', 0x88: 'NEWTRUE',
  0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8',
  0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX',
  0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** MARK nesting of a state dict is about 3; anything deeper is not one. */
export const MAX_MARK_DEPTH = 256;
/** GLOBAL names are short dotted identifiers. */
const MAX_GLOBAL_LINE = 1024;

export interface UnpickleOptions {
  /** The file the pickle came from, for error messages. */
  file: string;
  /** Which record inside it (e.g. "archive/data.pkl"), for error messages. */
  record: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Interprets a torch state-dict pickle without executing anything. Returns the pickled value. */
export function unpickle(data: Uint8Array, options: UnpickleOptions): PyValue {
  return new Unpickler(data, options).run();
}

class Unpickler {
  private pos = 0;
  private opStart = 0;
  private readonly stack: PyValue[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PyValue>();
  private readonly view: DataView;

  constructor(private readonly data: Uint8Array, private readonly options: UnpickleOptions) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private fail(problem: string, at = this.opStart): CheckpointError {
    return new CheckpointError(this.options.file, `${this.options.record}: ${problem} (at byte ${at} of the pickle)`);
  }

  private opName(op: number): string {
    return OPCODE_NAMES[op] ?? 'not a pickle opcode';
  }

  // --- input ----------------------------------------------------------------------------------

  private need(n: number, what: string): void {
    if (n > this.data.length - this.pos) {
      throw this.fail(`pickle ends inside ${what} (needs ${n} bytes, ${this.data.length - this.pos} left; truncated?)`);
    }
  }
  private u8(what: string): number {
    this.need(1, what);
    return this.data[this.pos++];
  }
  private u16(what: string): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  private u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  private i32(what: string): number {
    this.need(4, what);
    const v = this.view.getInt32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /** u64 length field; anything over the bytes left fails in `bytes()` anyway. */
  private u64(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }
  private bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const b = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private text(n: number, what: string): string {
    const b = this.bytes(n, what);
    try {
      return utf8.decode(b);
    } catch {
      throw this.fail(`${what} is not valid UTF-8`);
    }
  }
  private line(what: string): string {
    const end = Math.min(this.data.length, this.pos + MAX_GLOBAL_LINE + 1);
    for (let i = this.pos; i < end; i++) {
      if (this.data[i] === 0x0a) {
        const s = this.text(i - this.pos, what);
        this.pos++;
        return s;
      }
    }
    throw this.fail(`${what} has no newline within ${MAX_GLOBAL_LINE} bytes`);
  }

  // --- stack ----------------------------------------------------------------------------------

  private push(v: PyValue): void {
    this.stack.push(v);
  }
  private pop(what: string): PyValue {
    if (this.stack.length <= this.floor()) throw this.fail(`${what}: the pickle stack is empty`);
    return this.stack.pop()!;
  }
  private top(what: string): PyValue {
    if (this.stack.length <= this.floor()) throw this.fail(`${what}: the pickle stack is empty`);
    return this.stack[this.stack.length - 1];
  }
  /** Values below the innermost MARK belong to an enclosing construct. */
  private floor(): number {
    return this.marks.length ? this.marks[this.marks.length - 1] : 0;
  }
  private popMark(what: string): PyValue[] {
    const m = this.marks.pop();
    if (m === undefined) throw this.fail(`${what} without a MARK`);
    return this.stack.splice(m);
  }

  // --- main loop ------------------------------------------------------------------------------

  run(): PyValue {
    for (;;) {
      this.opStart = this.pos;
      if (this.pos >= this.data.length) throw this.fail('pickle ends without a STOP opcode (truncated?)');
      const op = this.data[this.pos++];
      switch (op) {
        case OP.PROTO: {
          const proto = this.u8('PROTO');
          if (proto > 5) throw this.fail(`unsupported pickle protocol ${proto}`);
          break;
        }
        case OP.FRAME:
          this.u64('FRAME'); // framing is only a read-ahead hint
          break;
        case OP.STOP: {
          if (this.marks.length) throw this.fail('STOP inside an unclosed MARK');
          if (this.stack.length !== 1) throw this.fail(`STOP with ${this.stack.length} values on the stack (expected 1)`);
          return this.stack[0];
        }
        case OP.MARK:
          if (this.marks.length >= MAX_MARK_DEPTH) throw this.fail(`MARK nesting deeper than ${MAX_MARK_DEPTH}`);
          this.marks.push(this.stack.length);
          break;

        // constants and scalars
        case OP.NONE: this.push(null); break;
        case OP.NEWTRUE: this.push(true); break;
        case OP.NEWFALSE: this.push(false); break;
        case OP.BININT: this.push(this.i32('BININT')); break;
        case OP.BININT1: this.push(this.u8('BININT1')); break;
        case OP.BININT2: this.push(this.u16('BININT2')); break;
        case OP.LONG1: {
          const n = this.u8('LONG1');
          this.push(decodeLong(this.bytes(n, 'LONG1')));
          break;
        }
        case OP.BINFLOAT: {
          this.need(8, 'BINFLOAT');
          this.push(new PyFloat(this.view.getFloat64(this.pos, false)));
          this.pos += 8;
          break;
        }
        case OP.BINUNICODE: this.push(this.text(this.u32('BINUNICODE'), 'BINUNICODE string')); break;
        case OP.SHORT_BINUNICODE: this.push(this.text(this.u8('SHORT_BINUNICODE'), 'SHORT_BINUNICODE string')); break;
        case OP.BINUNICODE8: this.push(this.text(this.u64('BINUNICODE8'), 'BINUNICODE8 string')); break;

        // containers
        case OP.EMPTY_TUPLE: this.push(new PyTuple([])); break;
        case OP.EMPTY_LIST: this.push([]); break;
        case OP.EMPTY_DICT: this.push(new PyDict(false)); break;
        case OP.TUPLE: this.push(new PyTuple(this.popMark('TUPLE'))); break;
        case OP.TUPLE1: {
          const a = this.pop('TUPLE1');
          this.push(new PyTuple([a]));
          break;
        }
        case OP.TUPLE2: {
          const b = this.pop('TUPLE2');
          const a = this.pop('TUPLE2');
          this.push(new PyTuple([a, b]));
          break;
        }
        case OP.TUPLE3: {
          const c = this.pop('TUPLE3');
          const b = this.pop('TUPLE3');
          const a = this.pop('TUPLE3');
          this.push(new PyTuple([a, b, c]));
          break;
        }
        case OP.APPEND: {
          const v = this.pop('APPEND');
          this.listAt(this.top('APPEND'), 'APPEND').push(v);
          break;
        }
        case OP.APPENDS: {
          const items = this.popMark('APPENDS');
          const list = this.listAt(this.top('APPENDS'), 'APPENDS');
          for (const v of items) list.push(v);
          break;
        }
        case OP.SETITEM: {
          const v = this.pop('SETITEM');
          const k = this.pop('SETITEM');
          this.dictAt(this.top('SETITEM'), 'SETITEM').items.set(this.key(k), v);
          break;
        }
        case OP.SETITEMS: {
          const items = this.popMark('SETITEMS');
          if (items.length % 2) throw this.fail('SETITEMS with an odd number of values');
          const dict = this.dictAt(this.top('SETITEMS'), 'SETITEMS');
          for (let i = 0; i < items.length; i += 2) dict.items.set(this.key(items[i]), items[i + 1]);
          break;
        }

        // memo
        case OP.BINPUT: this.memo.set(this.u8('BINPUT'), this.top('BINPUT')); break;
        case OP.LONG_BINPUT: this.memo.set(this.u32('LONG_BINPUT'), this.top('LONG_BINPUT')); break;
        case OP.MEMOIZE: this.memo.set(this.memo.size, this.top('MEMOIZE')); break;
        case OP.BINGET: this.push(this.memoGet(this.u8('BINGET'))); break;
        case OP.LONG_BINGET: this.push(this.memoGet(this.u32('LONG_BINGET'))); break;

        // the only "code": allowlisted globals, interpreted here
        case OP.GLOBAL: {
          const module = this.line('GLOBAL module');
          const name = this.line('GLOBAL name');
          this.push(this.global(module, name));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.pop('STACK_GLOBAL');
          const module = this.pop('STACK_GLOBAL');
          if (typeof module !== 'string' || typeof name !== 'string') throw this.fail('STACK_GLOBAL needs two strings');
          this.push(this.global(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.pop('REDUCE');
          const callable = this.pop('REDUCE');
          this.push(this.reduce(callable, args));
          break;
        }
        case OP.BUILD: {
          const state = this.pop('BUILD');
          const obj = this.top('BUILD');
          if (!(obj instanceof PyDict) || !(state === null || state instanceof PyDict)) {
            throw this.fail(`BUILD is only supported to set the state of an OrderedDict, not of ${describe(obj)}`);
          }
          obj.state = state;
          break;
        }
        case OP.BINPERSID: this.push(this.persistentLoad(this.pop('BINPERSID'))); break;

        default:
          throw this.fail(
            `unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} (${this.opName(op)}); ` +
            'only PyTorch tensor state dicts are supported',
          );
      }
    }
  }

  private memoGet(i: number): PyValue {
    if (!this.memo.has(i)) throw this.fail(`memo entry ${i} is read before it is written`);
    return this.memo.get(i)!;
  }

  private key(k: PyValue): PyKey {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return k;
    throw this.fail(`unsupported dict key ${describe(k)} (only str, int, bool and None keys are supported)`);
  }

  private listAt(v: PyValue, what: string): PyValue[] {
    if (!Array.isArray(v)) throw this.fail(`${what} on ${describe(v)}, not a list`);
    return v;
  }

  private dictAt(v: PyValue, what: string): PyDict {
    if (!(v instanceof PyDict)) throw this.fail(`${what} on ${describe(v)}, not a dict`);
    return v;
  }

  private global(module: string, name: string): PyGlobal {
    if (!isAllowedGlobal(module, name)) {
      throw new CheckpointError(
        this.options.file,
        `refuses to load global "${printable(`${module}.${name}`)}" (${this.options.record}, byte ${this.opStart}): ` +
        'only PyTorch tensor state dicts are supported',
      );
    }
    return new PyGlobal(module, name);
  }

  private reduce(callable: PyValue, args: PyValue): PyValue {
    if (!(callable instanceof PyGlobal)) throw this.fail(`REDUCE calls ${describe(callable)}, which is not callable`);
    if (!(args instanceof PyTuple)) throw this.fail(`REDUCE of ${callable.qualifiedName} with ${describe(args)} instead of an argument tuple`);
    const name = callable.qualifiedName;
    if (name === ORDERED_DICT) {
      if (args.items.length !== 0) throw this.fail(`${ORDERED_DICT} is only supported with no arguments`);
      return new PyDict(true);
    }
    if (name === REBUILD_TENSOR_V2) return this.rebuildTensor(args.items);
    throw this.fail(`${name} cannot be called; only PyTorch tensor state dicts are supported`);
  }

  /** `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
  private rebuildTensor(args: readonly PyValue[]): TorchTensor {
    const what = REBUILD_TENSOR_V2;
    if (args.length !== 6 && args.length !== 7) throw this.fail(`${what} takes 6 or 7 arguments, got ${args.length}`);
    const [storage, offset, size, stride, requiresGrad, hooks, metadata] = args;
    if (!(storage instanceof TorchStorage)) throw this.fail(`${what}: storage is ${describe(storage)}, not a storage record`);
    if (!isIndex(offset)) throw this.fail(`${what}: storage_offset is ${describe(offset)}, not a non-negative integer`);
    const dims = this.intTuple(size, `${what}: size`);
    const strides = this.intTuple(stride, `${what}: stride`);
    if (dims.length !== strides.length) {
      throw this.fail(`${what}: size has ${dims.length} dimensions but stride has ${strides.length}`);
    }
    if (typeof requiresGrad !== 'boolean') throw this.fail(`${what}: requires_grad is ${describe(requiresGrad)}, not a bool`);
    if (!(hooks instanceof PyDict)) throw this.fail(`${what}: backward_hooks is ${describe(hooks)}, not a dict`);
    if (hooks.items.size) throw this.fail(`${what}: tensors with backward hooks are not supported`);
    if (metadata !== undefined && !(metadata instanceof PyDict)) throw this.fail(`${what}: metadata is ${describe(metadata)}, not a dict`);
    return new TorchTensor(storage, offset, dims, strides, requiresGrad);
  }

  private intTuple(v: PyValue, what: string): number[] {
    if (!(v instanceof PyTuple)) throw this.fail(`${what} is ${describe(v)}, not a tuple`);
    const out: number[] = [];
    for (const x of v.items) {
      if (!isIndex(x)) throw this.fail(`${what} holds ${describe(x)}, not a non-negative integer`);
      out.push(x);
    }
    return out;
  }

  /** Persistent id ('storage', torch.XStorage, key, location, numel) → a storage record reference. */
  private persistentLoad(pid: PyValue): TorchStorage {
    if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
      throw this.fail(`persistent id ${describe(pid)} is not a ('storage', type, key, location, numel) tuple`);
    }
    const [, type, key, location, numel] = pid.items;
    if (!(type instanceof PyGlobal) || type.module !== 'torch' || !Object.hasOwn(STORAGE_DTYPES, type.name)) {
      throw this.fail(`persistent id names storage type ${describe(type)}, not a torch.*Storage class`);
    }
    if (typeof key !== 'string' || key.length === 0) throw this.fail(`storage key ${describe(key)} is not a non-empty string`);
    if (typeof location !== 'string') throw this.fail(`storage location ${describe(location)} is not a string`);
    if (!isIndex(numel)) throw this.fail(`storage size ${describe(numel)} is not a non-negative integer`);
    return new TorchStorage(STORAGE_DTYPES[type.name], type.qualifiedName, key, location, numel);
  }
}

function isIndex(v: PyValue | undefined): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** LONG1 payload: little-endian two's complement; small values come back as numbers. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
