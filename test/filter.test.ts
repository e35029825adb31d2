import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScoringEngine } from '../src/engine/scoring-engine.js';
import { BlipError } from '../src/errors.js';
import { discoverInputs } from '../src/filter/inputs.js';
import { type ManifestModel, readManifest } from '../src/filter/manifest.js';
import type { InputFormat, ResultOptions } from '../src/filter/options.js';
import { runLocal } from '../src/filter/run-local.js';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { fingerprintWeights } from '../src/retrieval/model-identity.js';
import { type FilterDataset, writeFilterDataset } from './helpers/filter-dataset.js';
import { readParts, tempFiles } from './helpers/filter-parts.js';
import { FIXTURES } from './helpers/goldens.js';
import { type ReferenceScore, referenceScores } from './helpers/model-reference.js';

const TINY = `${FIXTURES}/models/tiny`;
let dir: string;
let ds: FilterDataset;
let model: BlipForImageTextRetrieval;
let engine: ScoringEngine;
let identity: ManifestModel;
/** Direct model scores of every scorable row, by id. */
const reference = new Map<string, ReferenceScore>();
let threshold: number;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'blip-filter-'));
  ds = await writeFilterDataset(dir);
  model = await BlipForImageTextRetrieval.fromPretrained(TINY);
  const byImage = new Map<string, typeof ds.rows>();
  for (const r of ds.rows) if (r.bad === null) byImage.set(r.image, [...(byImage.get(r.image) ?? []), r]);
  for (const [image, rows] of byImage) {
    const scores = await referenceScores(model, join(ds.imageRoot, image), rows.map((r) => r.caption));
    rows.forEach((r, i) => reference.set(r.id, scores[i]));
  }
  // The median probability: keep splits the rows about in half, so the rule is tested both ways.
  const ps = [...reference.values()].map((s) => s.itmProbability).sort((a, b) => a - b);
  threshold = ps[Math.floor(ps.length / 2)];
  engine = new ScoringEngine(model);
  const { fingerprint } = await fingerprintWeights([`${TINY}/model.safetensors`]);
  identity = { model: TINY, revision: null, commit: null, weightsFile: 'model.safetensors', fingerprint };
});

after(async () => {
  await engine?.close();
  await model?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function optionsFor(inputFormat: InputFormat, patch: Partial<ResultOptions> = {}): ResultOptions {
  return {
    inputFormat, imageCol: 'image', textCol: 'caption', idCol: inputFormat === 'webdataset' ? null : 'id',
    imageRoot: inputFormat === 'csv' || inputFormat === 'jsonl' ? ds.imageRoot : null,
    threshold, minCosine: null, format: 'parquet', unitRows: 500, itmTextStart: 'cls', preCaption: false, ...patch,
  };
}

async function run(format: InputFormat, inputs: string[], output: string, patch: Partial<ResultOptions> = {}, overwrite = false) {
  const { files, format: detected } = await discoverInputs(inputs);
  assert.equal(detected, format);
  return runLocal({ output, inputs: files, options: optionsFor(format, patch), model: identity, overwrite, engine: async () => engine });
}

const BAD: Record<string, Record<InputFormat, RegExp>> = {
  missing: { csv: /not found/, jsonl: /not found/, parquet: /no image/, webdataset: /no image member/ },
  corrupt: { csv: /image/i, jsonl: /image/i, parquet: /image/i, webdataset: /image/i },
  empty: { csv: /empty/, jsonl: /empty/, parquet: /empty/, webdataset: /empty/ },
  nul: { csv: /NUL/, jsonl: /NUL/, parquet: /NUL/, webdataset: /NUL/ },
};

for (const format of ['csv', 'jsonl', 'parquet', 'webdataset'] as const) {
  test(`${format}: every row scored as the model scores it, keep by the threshold, bad rows carry their error`, async () => {
    const inputs = { csv: [join(dir, 'data-*.csv')], jsonl: [ds.jsonl], parquet: [ds.parquet], webdataset: [join(dir, 'shard-*.tar')] }[format];
    const output = join(dir, `out-${format}`);
    const summary = await run(format, inputs, output);
    const idColumn = format === 'webdataset' ? '__key__' : 'id';
    const rows = await readParts(output, idColumn);
    assert.equal(rows.length, ds.rows.length, 'one output row per input row');
    assert.equal(new Set(rows.map((r) => r.id)).size, ds.rows.length, 'every id once');
    const byId = new Map(rows.map((r) => [r.id, r]));
    let kept = 0;
    let worst = 0;
    for (const input of ds.rows) {
      const row = byId.get(input.id);
      assert.ok(row, `row ${input.id} is in the output`);
      if (input.bad !== null) {
        assert.match(row.error ?? '', BAD[input.bad][format], `${input.id} (${input.bad}): ${row.error}`);
        assert.equal(row.keep, false);
        assert.equal(row.itm_probability, null);
        continue;
      }
      assert.equal(row.error, null, `${input.id}: ${row.error}`);
      const ref = reference.get(input.id)!;
      const logits = row.itm_logits!;
      assert.equal(logits.length, 2);
      worst = Math.max(worst, Math.abs(logits[0] - ref.itmLogits[0]), Math.abs(logits[1] - ref.itmLogits[1]), Math.abs(row.cosine! - ref.cosine));
      assert.ok(Math.abs(row.itm_probability! - 1 / (1 + Math.exp(logits[0] - logits[1]))) < 1e-12);
      assert.equal(row.keep, row.itm_probability! >= threshold, `${input.id}: keep follows the threshold`);
      if (row.keep) kept++;
    }
    assert.ok(worst <= 1e-6, `ITM logits and cosine within 1e-6 of direct model calls (worst ${worst})`);
    assert.ok(kept > 0 && kept < reference.size, 'the threshold keeps some rows and drops others');
    const t = summary.manifest.totals;
    assert.deepEqual(t, { units: t.units, unitsDone: t.units, rows: ds.rows.length, kept, errors: 8 });
    assert.equal(summary.manifest.inputs.length, inputs[0].includes('*') ? 2 : 1);
    assert.deepEqual(tempFiles(output), []);
    if (format !== 'webdataset') {
      // The input columns come through unchanged, plus the row number across the input files.
      const r0 = byId.get(ds.rows[0].id)!;
      assert.equal(r0.caption, ds.rows[0].caption);
      assert.equal(Number(r0.__row__), 0);
      const last = byId.get(ds.rows.at(-1)!.id)!;
      assert.equal(Number(last.__row__), ds.rows.length - 1);
    } else {
      assert.equal(byId.get(ds.rows[0].id)!.txt, ds.rows[0].caption);
    }
  });
}

test('a rerun skips complete units, redoes a missing part, and refuses other options unless --overwrite', async () => {
  const output = join(dir, 'out-jsonl-rerun');
  const first = await run('jsonl', [ds.jsonl], output, { format: 'jsonl', unitRows: 700 });
  assert.equal(first.unitsRun, 3);
  const again = await run('jsonl', [ds.jsonl], output, { format: 'jsonl', unitRows: 700 });
  assert.equal(again.unitsRun, 0);
  assert.equal(again.unitsSkipped, 3);
  assert.equal(again.resumed, true);

  unlinkSync(join(output, 'part-00001.jsonl'));
  const redo = await run('jsonl', [ds.jsonl], output, { format: 'jsonl', unitRows: 700 });
  assert.equal(redo.unitsRun, 1);
  const rows = await readParts(output, 'id');
  assert.equal(rows.length, ds.rows.length);
  assert.equal(new Set(rows.map((r) => r.id)).size, ds.rows.length);

  await assert.rejects(run('jsonl', [ds.jsonl], output, { format: 'jsonl', unitRows: 700, threshold: 0.9 }), (e: unknown) => {
    assert.ok(e instanceof BlipError);
    assert.match(e.message, /another filter run: it was made with threshold .* \(now 0\.9\); use --overwrite/);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  const replaced = await run('jsonl', [ds.jsonl], output, { format: 'jsonl', unitRows: 700, threshold: 0.9 }, true);
  assert.equal(replaced.unitsRun, 3);
  assert.equal((await readManifest(output))!.options.threshold, 0.9);
  assert.ok((await readParts(output, 'id')).every((r) => r.keep === (r.itm_probability !== null && r.itm_probability >= 0.9)));
});
