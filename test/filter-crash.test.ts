import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifest } from '../src/filter/manifest.js';
import { type FilterDataset, writeFilterDataset } from './helpers/filter-dataset.js';
import { partCount, spawnCli, TINY, waitFor } from './helpers/filter-cli.js';
import { readParts, tempFiles } from './helpers/filter-parts.js';

let dir: string;
let ds: FilterDataset;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'blip-filter-crash-'));
  ds = await writeFilterDataset(dir, { images: 60, captionsPerImage: 20 });
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('filter SIGKILLed mid-run, then rerun: every id exactly once across the parts, no temp file left', async () => {
  const output = join(dir, 'out');
  const args = ['filter', '--model', TINY, '--input', join(dir, 'data-*.csv'), '--image-root', ds.imageRoot, '--output', output, '--unit-rows', '50', '--json'];
  const first = spawnCli(args);
  let exited = false;
  void first.done.then(() => { exited = true; });
  await waitFor('two committed parts', () => exited || partCount(output) >= 2);
  assert.equal(exited, false, 'the first run must still be running when it is killed');
  first.child.kill('SIGKILL');
  const killed = await first.done;
  assert.equal(killed.signal, 'SIGKILL');
  const before = await readManifest(output);
  assert.ok(before);
  const total = before.totals.units;
  const doneBefore = before.totals.unitsDone;
  // Parts are renamed into place before the manifest records them, so the kill can land between the
  // two (a committed part the manifest does not know yet): the rerun must cope with either state.
  assert.ok(doneBefore < total, `killed mid-run (${doneBefore}/${total} units done)`);
  // A temp file of the killed process, as a kill mid-write leaves one.
  writeFileSync(join(output, `.part-00999.parquet.tmp-${hostname().replace(/[^A-Za-z0-9.]/g, '_')}-${first.child.pid}-deadbeef`), 'partial');

  const second = spawnCli(args);
  const r = await second.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '', 'nothing on stderr when it is not a terminal');
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.resumed, true);
  assert.ok(summary.units_skipped >= doneBefore, 'the committed units were not scored again');
  assert.equal(summary.units_run + summary.units_skipped, total);
  assert.equal(summary.rows, ds.rows.length);

  const rows = await readParts(output, 'id');
  const ids = rows.map((row) => row.id).sort();
  assert.deepEqual(ids, ds.rows.map((row) => row.id).sort(), 'every input id exactly once');
  assert.deepEqual(tempFiles(output), []);
  const after = (await readManifest(output))!;
  assert.equal(after.totals.unitsDone, total);
  assert.equal(after.totals.errors, 8);
});
