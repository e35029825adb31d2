/**
 * The values the restricted unpickler (pickle.ts) builds from a `torch.save` state dict: Python
 * tuples, floats, dicts, allowlisted globals, and torch's storages and tensors as inert records,
 * plus their short descriptions for error messages.
 */
import type { TensorDType } from './tensor-info.js';

export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

/** A Python float, kept apart from ints so a shape can never silently hold 2.5. */
export class PyFloat {
  constructor(readonly value: number) {}
}

/** A dict or collections.OrderedDict. Keys are limited to str/int/bool/None. */
export class PyDict {
  readonly items = new Map<PyKey, PyValue>();
  /** Instance state set by BUILD (OrderedDict `__dict__`, e.g. a state dict's `_metadata`); unused. */
  state: PyValue | undefined;
  constructor(readonly ordered: boolean) {}
}

/** A reference to an allowlisted global (never anything else). */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A storage record of the archive, from a persistent id ('storage', torch.XStorage, key, location, numel). */
export class TorchStorage {
  constructor(
    readonly dtype: TensorDType,
    /** e.g. "torch.FloatStorage". */
    readonly storageType: string,
    /** Record name under `<prefix>/data/`. */
    readonly key: string,
    /** Device it was saved from, e.g. "cpu" or "cuda:0" (irrelevant here). */
    readonly location: string,
    /** Number of elements (of `dtype`) in the storage. */
    readonly numel: number,
  ) {}
}

/** What `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)` would build. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    /** In elements, not bytes. */
    readonly storageOffset: number,
    readonly size: readonly number[],
    /** In elements. */
    readonly stride: readonly number[],
    readonly requiresGrad: boolean,
  ) {}
}

export type PyKey = string | number | bigint | boolean | null;
export type PyValue = PyKey | PyFloat | PyTuple | PyValue[] | PyDict | PyGlobal | TorchStorage | TorchTensor;

/** Escapes control characters so names taken from a hostile file cannot garble a terminal. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A short, non-recursive description of a value for error messages. */
export function describe(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
  if (typeof v === 'number' || typeof v === 'bigint') return `int ${v}`;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v instanceof PyFloat) return `float ${v.value}`;
  if (v instanceof PyTuple) return `a ${v.items.length}-tuple`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof PyDict) return v.ordered ? 'an OrderedDict' : 'a dict';
  if (v instanceof PyGlobal) return v.qualifiedName;
  if (v instanceof TorchStorage) return `storage "${v.key}"`;
  if (v instanceof TorchTensor) return 'a tensor';
  return 'an unknown value';
}
