import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FilterDataset, writeFilterDataset } from './helpers/filter-dataset.js';
import { TINY } from './helpers/filter-cli.js';
import { measureFilterRun, type UnitSample } from './helpers/memory-run.js';

let dir: string;
let ds: FilterDataset;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'blip-filter-memory-'));
  // 20,000 rows over 20 images: the engine's cache serves the images, so the run measures the
  // filter's own memory (rows, units, parts) at the speed of the text side.
  ds = await writeFilterDataset(dir, { images: 20, captionsPerImage: 1000, formats: ['jsonl'] });
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const UNIT_ROWS = 1000;

/*
 * Bounds, from runs of this test and of 40,000 and 80,000 rows on the 2-vCPU VM (docs/performance.md,
 * "Filter memory"). After a full GC at each unit, the live JS memory sits at 43-49 MiB from the
 * first unit to the 80th (it alternates by ~4 MiB with how much of the other unit in flight has
 * been read), and VmRSS wanders in a band up to ~45 MiB wide with no trend: allocator slack (glibc
 * arenas of ~20 threads, onnxruntime's arena, DuckDB's buffers), which the earlier peak-only test
 * mistook for growth. Units 1 and 2 run together while heaps and arenas size themselves (RSS rose
 * from 323 MiB after unit 1 to 349 MiB after unit 3 in one run): they count for the peak, not for
 * the trend. A floor (the least value over units 3-10, then over units 11-20) rises with anything
 * retained per row by ~8,000 rows' worth. Injected leaks that fail it: each row's values kept
 * (~0.4 KiB per row, JS +3.4 MiB), a 512-byte Buffer per row (JS +6.2), a DuckDB table of ~2.2 KB
 * per row (RSS +21), a worker thread per unit (threads and RSS).
 */
/** Units 1 and 2 are warm-up: left out of the trend. */
const WARMUP_UNITS = 2;
/** Most the JS floor may rise from units 3-10 to units 11-20 (observed -0.5 to +1.1). */
const JS_SLACK_MB = 2.5;
/** Most the RSS floor may rise from units 3-10 to units 11-20 (observed -20 to +2). */
const RSS_SLACK_MB = 16;
/**
 * Most the peak may grow from the first unit to the end: the warm-up of heaps and arenas (observed
 * +16 to +37 MiB over 20,000 rows, +39 over 80,000). The trend checks above catch growth with the rows.
 */
const PEAK_WARMUP_MB = 64;

function floor(samples: UnitSample[], key: 'js' | 'rss'): number {
  return Math.min(...samples.map((s) => s[key]));
}

const mb = (v: number) => `${v.toFixed(1)} MiB`;

// Measured on the real CLI process (a child; inside a node:test test, the runner's own
// bookkeeping would be measured too), with a preload that samples it after a full GC per unit.
test('memory stays flat: on 20,000 rows nothing is retained per row, and peak RSS grows only by warm-up', {
  skip: !existsSync('/proc/self/status') && 'needs /proc',
}, async () => {
  assert.ok(ds.rows.length >= 20_000);
  const units = Math.ceil(ds.rows.length / UNIT_ROWS);
  const output = join(dir, 'out');
  const run = await measureFilterRun(
    ['filter', '--model', TINY, '--input', ds.jsonl, '--image-root', ds.imageRoot, '--output', output, '--unit-rows', String(UNIT_ROWS), '--json'],
    output, units,
  );
  const r = run.finished;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).rows, ds.rows.length);

  const half = Math.floor(units / 2);
  const early = run.samples.filter((s) => s.units > WARMUP_UNITS && s.units <= half);
  const late = run.samples.filter((s) => s.units > half);
  const first = run.samples[0];
  process.stdout.write(`samples after a full GC at units ${run.samples.map((s) => s.units).join(',')}\n`);
  process.stdout.write(`  js MiB:  ${run.samples.map((s) => s.js.toFixed(1)).join(' ')}\n`);
  process.stdout.write(`  rss MiB: ${run.samples.map((s) => s.rss.toFixed(0)).join(' ')}\n`);
  process.stdout.write(`  threads: ${run.samples.map((s) => s.threads).join(' ')}\n`);
  // Polled at 25 ms: units finishing together share a sample, so not every unit has its own.
  assert.ok(early.length >= 4 && late.length >= 5, `too few samples to compare (units ${run.samples.map((s) => s.units).join(',')})`);
  const js = [floor(early, 'js'), floor(late, 'js')];
  const rss = [floor(early, 'rss'), floor(late, 'rss')];
  process.stdout.write(`floors, units ${WARMUP_UNITS + 1}-${half} -> ${half + 1}-${units - 1}: js ${mb(js[0])} -> ${mb(js[1])}, rss ${mb(rss[0])} -> ${mb(rss[1])}; `
    + `peak RSS after unit ${first.units} ${mb(first.hwm)}, at the end ${mb(run.peak)}\n`);

  // Units 1 and 2 start together and may finish in the same poll.
  assert.ok(first.units <= 2, `the first sample came after unit ${first.units}`);
  assert.ok(js[1] - js[0] <= JS_SLACK_MB, `live JS memory grew with the rows: floor ${mb(js[0])} over units ${WARMUP_UNITS + 1}-${half}, ${mb(js[1])} after`);
  assert.ok(rss[1] - rss[0] <= RSS_SLACK_MB, `RSS grew with the rows: floor ${mb(rss[0])} over units ${WARMUP_UNITS + 1}-${half}, ${mb(rss[1])} after`);
  // A thread may come and go (one run had 21 for two units); a thread kept per unit raises the floor.
  const threads = [Math.max(...early.map((s) => s.threads)), Math.min(...late.map((s) => s.threads))];
  assert.ok(threads[1] <= threads[0], `threads were added as units ran: up to ${threads[0]} over units ${WARMUP_UNITS + 1}-${half}, at least ${threads[1]} after`);
  assert.ok(run.peak <= first.hwm + PEAK_WARMUP_MB, `peak RSS grew from ${mb(first.hwm)} after the first unit to ${mb(run.peak)} at the end`);
});
