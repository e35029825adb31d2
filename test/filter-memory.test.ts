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
 * "Filter memory"). After a full GC at each unit, the live JS memory sits at 43-49 MiB from the first
 * unit to the 80th (it alternates by ~4 MiB with how much of the other unit in flight has been
 * read), and VmRSS wanders in a band ~45 MiB wide with no trend: allocator slack (glibc arenas of
 * ~20 threads, onnxruntime's arena, DuckDB's buffers), which the earlier peak-only test mistook
 * for growth. A floor (the least value over a half of the run) rises with anything retained per
 * row, by ~10,000 rows' worth between the halves, so a leak of ~0.3 KiB per row in JS objects or
 * Buffers, ~1.6 KiB per row in native memory, or a thread per unit fails the test.
 */
/** Most the JS floor may rise from the first half of the units to the second (observed ≤ 1.5). */
const JS_SLACK_MB = 3;
/** Most the RSS floor may rise from the first half to the second (observed ≤ 5). */
const RSS_SLACK_MB = 16;
/** Most the peak may grow from the first unit to the end: warm-up of heaps and arenas (observed ≤ 42). */
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
  const early = run.samples.filter((s) => s.units <= half);
  const late = run.samples.filter((s) => s.units > half);
  const first = run.samples[0];
  process.stdout.write(`samples after a full GC at units ${run.samples.map((s) => s.units).join(',')}\n`);
  process.stdout.write(`  js MiB:  ${run.samples.map((s) => s.js.toFixed(1)).join(' ')}\n`);
  process.stdout.write(`  rss MiB: ${run.samples.map((s) => s.rss.toFixed(0)).join(' ')}\n`);
  process.stdout.write(`  threads: ${run.samples.map((s) => s.threads).join(' ')}\n`);
  // Polled at 25 ms: units finishing together share a sample, so not every unit has its own.
  assert.ok(early.length >= 5 && late.length >= 5, `too few samples to compare (units ${run.samples.map((s) => s.units).join(',')})`);
  const js = [floor(early, 'js'), floor(late, 'js')];
  const rss = [floor(early, 'rss'), floor(late, 'rss')];
  process.stdout.write(`floors, units 1-${half} -> ${half + 1}-${units - 1}: js ${mb(js[0])} -> ${mb(js[1])}, rss ${mb(rss[0])} -> ${mb(rss[1])}; `
    + `peak RSS after unit ${first.units} ${mb(first.hwm)}, at the end ${mb(run.peak)}\n`);

  // Units 1 and 2 start together and may finish in the same poll.
  assert.ok(first.units <= 2, `the first sample came after unit ${first.units}`);
  assert.ok(js[1] - js[0] <= JS_SLACK_MB, `live JS memory grew with the rows: floor ${mb(js[0])} over units 1-${half}, ${mb(js[1])} after`);
  assert.ok(rss[1] - rss[0] <= RSS_SLACK_MB, `RSS grew with the rows: floor ${mb(rss[0])} over units 1-${half}, ${mb(rss[1])} after`);
  assert.ok(Math.max(...late.map((s) => s.threads)) <= Math.max(...early.map((s) => s.threads)), 'threads were added as units ran');
  assert.ok(run.peak <= first.hwm + PEAK_WARMUP_MB, `peak RSS grew from ${mb(first.hwm)} after the first unit to ${mb(run.peak)} at the end`);
});
