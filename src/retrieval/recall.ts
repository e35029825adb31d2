/**
 * Recall@K of BLIP's `itm_eval` (salesforce/BLIP `train_retrieval.py`; LAVIS `_report_metrics`):
 * for every query, the candidates are ordered by `np.argsort(score)[::-1]` and the query's rank is
 * the position of its (best) ground truth; R@K is the percentage of queries with rank < K.
 *
 * Equal scores (the -100 fillers outside a query's top k) are ordered exactly as numpy 1.24's
 * default `np.argsort` orders them, reimplemented below, so the figures are those the original
 * code prints even when k_test is below 10 and the ground truth is among the fillers.
 */

/** `itm_eval`'s result, with LAVIS's key names; percent. */
export interface RecallFigures {
  txt_r1: number;
  txt_r5: number;
  txt_r10: number;
  txt_r_mean: number;
  img_r1: number;
  img_r5: number;
  img_r10: number;
  img_r_mean: number;
  r_mean: number;
}

/** 0-based rank of every query: `i2t` per image (text retrieval), `t2i` per text (image retrieval). */
export interface RetrievalRanks {
  i2t: number[];
  t2i: number[];
}

const SMALL_QUICKSORT = 15;

function floorLog2(n: number): number {
  let depth = 0;
  while ((n >>= 1) > 0) depth++;
  return depth;
}

/**
 * `np.argsort(values)` with numpy 1.24's default kind (`quicksort`, numpy's introsort
 * `aquicksort_` in `npysort/quicksort.cpp`), including its order of equal values: median-of-3
 * quicksort partitions while a partition spans more than 16 entries (the larger side goes on a
 * stack), insertion sort below, heapsort (`aheapsort_`) when the depth limit 2 floor(log2 n) runs
 * out. Compares with `<` only (no NaN handling: scores are finite). numpy 1.25+ dispatches to
 * x86-simd-sort on AVX-512 machines, whose tie order differs; 1.24 never does for argsort.
 */
export function numpyArgsort(values: ArrayLike<number>): Int32Array {
  const n = values.length;
  const v = values;
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  if (n < 2) return a;
  const stack: number[] = [];
  const depths: number[] = [];
  let pl = 0;
  let pr = n - 1;
  let cdepth = floorLog2(n) * 2;
  for (;;) {
    if (cdepth < 0) {
      heapsortRange(v, a, pl, pr - pl + 1);
    } else {
      while (pr - pl > SMALL_QUICKSORT) {
        const pm = pl + ((pr - pl) >> 1);
        if (v[a[pm]] < v[a[pl]]) swap(a, pm, pl);
        if (v[a[pr]] < v[a[pm]]) swap(a, pr, pm);
        if (v[a[pm]] < v[a[pl]]) swap(a, pm, pl);
        const vp = v[a[pm]];
        let pi = pl;
        let pj = pr - 1;
        swap(a, pm, pj);
        for (;;) {
          do ++pi; while (v[a[pi]] < vp);
          do --pj; while (vp < v[a[pj]]);
          if (pi >= pj) break;
          swap(a, pi, pj);
        }
        swap(a, pi, pr - 1);
        if (pi - pl < pr - pi) {
          stack.push(pi + 1, pr);
          pr = pi - 1;
        } else {
          stack.push(pl, pi - 1);
          pl = pi + 1;
        }
        depths.push(--cdepth);
      }
      for (let pi = pl + 1; pi <= pr; pi++) {
        const vi = a[pi];
        const vp = v[vi];
        let pj = pi;
        while (pj > pl && vp < v[a[pj - 1]]) {
          a[pj] = a[pj - 1];
          pj--;
        }
        a[pj] = vi;
      }
    }
    if (stack.length === 0) break;
    pr = stack.pop()!;
    pl = stack.pop()!;
    cdepth = depths.pop()!;
  }
  return a;
}

function swap(a: Int32Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/** numpy's `aheapsort_` on a[start .. start + n - 1] (1-based heap indexing as in the C code). */
function heapsortRange(v: ArrayLike<number>, a: Int32Array, start: number, n: number): void {
  const at = (k: number) => a[start + k - 1];
  const put = (k: number, x: number) => { a[start + k - 1] = x; };
  // Moves `tmp` down from heap slot i of a heap of `size` entries, as numpy's sift loop.
  const siftDown = (tmp: number, i: number, size: number) => {
    for (let j = i << 1; j <= size;) {
      if (j < size && v[at(j)] < v[at(j + 1)]) j += 1;
      if (v[tmp] < v[at(j)]) {
        put(i, at(j));
        i = j;
        j += j;
      } else break;
    }
    put(i, tmp);
  };
  for (let l = n >> 1; l > 0; --l) siftDown(at(l), l, n);
  for (; n > 1;) {
    const tmp = at(n);
    put(n, at(1));
    n -= 1;
    siftDown(tmp, 1, n);
  }
}

/**
 * The rank `itm_eval` gives one query: position, in `np.argsort(scores)[::-1]`, of the first of
 * its ground-truth candidates.
 */
export function queryRank(scores: ArrayLike<number>, groundTruth: readonly number[]): number {
  if (groundTruth.length === 0) throw new RangeError('a query needs at least one ground-truth candidate');
  const order = numpyArgsort(scores);
  const n = order.length;
  const truth = new Set(groundTruth);
  // Reversed order: position p holds order[n - 1 - p].
  for (let p = 0; p < n; p++) if (truth.has(order[n - 1 - p])) return p;
  throw new RangeError(`ground truth ${groundTruth.join(', ')} is not among the ${n} candidates`);
}

/** Rank if every tie is broken in favour of the ground truth (candidates scoring strictly higher). */
export function bestCaseRank(scores: ArrayLike<number>, groundTruth: readonly number[]): number {
  const best = Math.max(...groundTruth.map((g) => scores[g]));
  let r = 0;
  for (let c = 0; c < scores.length; c++) if (scores[c] > best) r++;
  return r;
}

/** Rank if every tie is broken against the ground truth (other candidates scoring higher or equal). */
export function worstCaseRank(scores: ArrayLike<number>, groundTruth: readonly number[]): number {
  const best = Math.max(...groundTruth.map((g) => scores[g]));
  const truth = new Set(groundTruth.filter((g) => scores[g] === best));
  let r = 0;
  for (let c = 0; c < scores.length; c++) if (scores[c] >= best && !truth.has(c)) r++;
  return r;
}

/** `100.0 * len(np.where(ranks < k)[0]) / len(ranks)`, with the same double operations. */
export function recallAt(ranks: readonly number[], k: number): number {
  let hits = 0;
  for (const r of ranks) if (r < k) hits++;
  return (100.0 * hits) / ranks.length;
}

/** `itm_eval`'s figures from the ranks (means as `(r1 + r5 + r10) / 3` and `(tr + ir) / 2`). */
export function recallFigures(ranks: RetrievalRanks): RecallFigures {
  const tr1 = recallAt(ranks.i2t, 1);
  const tr5 = recallAt(ranks.i2t, 5);
  const tr10 = recallAt(ranks.i2t, 10);
  const ir1 = recallAt(ranks.t2i, 1);
  const ir5 = recallAt(ranks.t2i, 5);
  const ir10 = recallAt(ranks.t2i, 10);
  const trMean = (tr1 + tr5 + tr10) / 3;
  const irMean = (ir1 + ir5 + ir10) / 3;
  return {
    txt_r1: tr1,
    txt_r5: tr5,
    txt_r10: tr10,
    txt_r_mean: trMean,
    img_r1: ir1,
    img_r5: ir5,
    img_r10: ir10,
    img_r_mean: irMean,
    r_mean: (trMean + irMean) / 2,
  };
}
