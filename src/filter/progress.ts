import type { PairOutcome } from '../engine/types.js';
import { keepPair, type ResultOptions } from './options.js';

export interface FilterCounts {
  pairs: number;
  kept: number;
  errors: number;
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Counts pairs as the engine finishes them, for the progress bar. */
export class FilterProgress {
  readonly counts: FilterCounts = { pairs: 0, kept: 0, errors: 0 };
  private readonly started = Date.now();

  /** `total`: pairs still to do in this run (null when unknown, as for WebDataset shards). */
  constructor(private readonly options: Pick<ResultOptions, 'threshold' | 'minCosine'>, readonly total: number | null) {}

  add(outcomes: PairOutcome[]): void {
    for (const o of outcomes) {
      this.counts.pairs++;
      if (!o.ok) this.counts.errors++;
      else if (keepPair(this.options, o.itmProbability, o.cosine)) this.counts.kept++;
    }
  }

  get seconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** `filtering [#####-----] 1200/20000 pairs  35.2 pairs/s  ETA 7:57  kept 43.1%  3 errors` */
  line(width = 20): string {
    const { pairs, kept, errors } = this.counts;
    const rate = pairs / Math.max(this.seconds, 1e-3);
    const parts = ['filtering'];
    if (this.total !== null && this.total > 0) {
      const filled = Math.min(width, Math.round((pairs / this.total) * width));
      parts.push(`[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`, `${pairs}/${this.total} pairs`);
    } else {
      parts.push(`${pairs} pairs`);
    }
    if (pairs > 0) parts.push(`${rate >= 10 ? rate.toFixed(0) : rate.toFixed(1)} pairs/s`);
    if (pairs > 0 && this.total !== null && this.total > pairs) parts.push(`ETA ${clock((this.total - pairs) / rate)}`);
    if (pairs > 0) parts.push(`kept ${((100 * kept) / pairs).toFixed(1)}%`);
    if (errors > 0) parts.push(`${errors} error${errors === 1 ? '' : 's'}`);
    return parts.join('  ');
  }
}
