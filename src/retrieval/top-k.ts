/**
 * Top-k selection with a fixed total order: higher value first, equal values by lower index.
 * (`torch.topk` leaves the order of equal values unspecified; this one is deterministic and does not
 * depend on the order in which candidates are offered.)
 */

export interface TopK {
  k: number;
  /** [rows, k] candidate indices, best first. */
  indices: Int32Array;
  /** [rows, k] their values. */
  values: Float32Array;
}

/** true when candidate (va, ia) ranks below (vb, ib). */
function worse(va: number, ia: number, vb: number, ib: number): boolean {
  return va < vb || (va === vb && ia > ib);
}

/**
 * `rows` independent bounded heaps of capacity k; `offer(row, value, index)` in any order, then
 * `result()` gives each row's k best, sorted best first.
 */
export class TopKHeaps {
  private readonly vals: Float32Array;
  private readonly idx: Int32Array;
  private readonly size: Int32Array;

  constructor(readonly rows: number, readonly k: number) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
    this.vals = new Float32Array(rows * k);
    this.idx = new Int32Array(rows * k);
    this.size = new Int32Array(rows);
  }

  offer(row: number, value: number, index: number): void {
    const k = this.k;
    const base = row * k;
    const v = this.vals;
    const ix = this.idx;
    const n = this.size[row];
    // Values are stored as float32; compare the value as it will be stored.
    const fv = Math.fround(value);
    if (n < k) {
      // Sift up in a min-heap whose root is the worst kept candidate.
      let c = n;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!worse(fv, index, v[base + p], ix[base + p])) break;
        v[base + c] = v[base + p];
        ix[base + c] = ix[base + p];
        c = p;
      }
      v[base + c] = fv;
      ix[base + c] = index;
      this.size[row] = n + 1;
      return;
    }
    if (!worse(v[base], ix[base], fv, index)) return;
    // Replace the root and sift down.
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= k) break;
      let m = l;
      const r = l + 1;
      if (r < k && worse(v[base + r], ix[base + r], v[base + l], ix[base + l])) m = r;
      if (!worse(v[base + m], ix[base + m], fv, index)) break;
      v[base + c] = v[base + m];
      ix[base + c] = ix[base + m];
      c = m;
    }
    v[base + c] = fv;
    ix[base + c] = index;
  }

  /** Each row's candidates, best first. Every row must have received at least k offers. */
  result(): TopK {
    const k = this.k;
    const indices = new Int32Array(this.rows * k);
    const values = new Float32Array(this.rows * k);
    const order = new Array<number>(k);
    for (let r = 0; r < this.rows; r++) {
      if (this.size[r] !== k) throw new RangeError(`row ${r} has ${this.size[r]} candidates, fewer than k = ${k}`);
      const base = r * k;
      for (let j = 0; j < k; j++) order[j] = base + j;
      order.sort((a, b) => (worse(this.vals[a], this.idx[a], this.vals[b], this.idx[b]) ? 1 : -1));
      for (let j = 0; j < k; j++) {
        indices[base + j] = this.idx[order[j]];
        values[base + j] = this.vals[order[j]];
      }
    }
    return { k, indices, values };
  }
}

/** The k best entries of one row of values (k is capped at the row length). */
export function topK(values: ArrayLike<number>, k: number): TopK {
  const kk = Math.min(k, values.length);
  const heaps = new TopKHeaps(1, kk);
  for (let i = 0; i < values.length; i++) heaps.offer(0, values[i], i);
  return heaps.result();
}
