import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatIndexProgress } from '../src/cli/index-command.js';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { indexImages } from '../src/retrieval/build-index.js';
import { collectImages, inScope } from '../src/retrieval/collect-images.js';
import { ImageIndex, type StoredImage } from '../src/retrieval/image-index.js';
import { fingerprintWeights, modelIdentity } from '../src/retrieval/model-identity.js';
import { searchByImage, searchByText } from '../src/retrieval/search.js';
import { FIXTURES } from './helpers/goldens.js';
import { writeImageFolder, writeSyntheticImage } from './helpers/image-folder.js';

const TINY = resolve(FIXTURES, 'models/tiny');
const TINY_384 = resolve(FIXTURES, 'models/tiny-384');
const ENV = { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: `${FIXTURES}/__no_cache__` };
const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

interface CliResult { status: number | null; stdout: string; stderr: string }

function cli(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', env: ENV });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cliJson(...args: string[]): Record<string, any> {
  const r = cli(...args, '--json');
  assert.equal(r.status, 0, `blip-itm ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

function oneLineError(r: CliResult, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one error line, got:\n${r.stderr}`);
  assert.match(lines[0], /^blip-itm: /);
  assert.match(lines[0], pattern);
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

async function stored(db: string): Promise<StoredImage[]> {
  const index = await ImageIndex.open(db);
  try {
    return await index.all();
  } finally {
    index.close();
  }
}

function assertStoredOnce(rows: StoredImage[], expected: string[]): void {
  const paths = rows.map((r) => r.path).sort();
  assert.deepEqual(paths, [...expected].sort(), 'every image stored exactly once');
}

describe('image index and search', () => {
  let work: string;
  let folder: string;
  let db: string;
  let images: string[];
  let broken: string;
  let model: BlipForImageTextRetrieval;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'blip-index-'));
    folder = join(work, 'photos');
    db = join(work, 'db');
    images = await writeImageFolder(folder, 56);
    broken = join(folder, 'sub', 'broken.png');
    writeFileSync(broken, 'this is text, not a PNG\n');
    writeFileSync(join(folder, 'notes.txt'), 'not an image extension: ignored\n');
    model = await BlipForImageTextRetrieval.fromPretrained(TINY);
  });
  after(async () => {
    await model?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const QUERY = 'a striped red and blue pattern';

  async function queryFeature(text: string): Promise<Float32Array> {
    return (await model.encodeTexts(model.processor.tokenize([text]))).embeds.data;
  }

  test('index stores every image once with its feature, path, size, mtime and sha256; unreadable ones are listed', async () => {
    const summary = cliJson('index', folder, '--db', db, '--model', TINY, '--batch-size', '8');
    assert.deepEqual(
      [summary.added, summary.updated, summary.removed, summary.unchanged, summary.failed, summary.encoded, summary.total],
      [56, 0, 0, 0, 1, 56, 56],
    );
    assert.equal(summary.failures[0].path, broken);
    assert.match(summary.failures[0].error, /not a readable image/);
    assert.equal(summary.model_identity.dims, 16);
    assert.equal(summary.db, db);

    const rows = await stored(db);
    assertStoredOnce(rows, images);
    for (const r of rows) {
      const st = statSync(r.path);
      assert.equal(r.size, st.size);
      assert.equal(r.mtimeMs, st.mtimeMs);
      assert.equal(r.sha256, sha256(r.path));
      assert.equal(r.vector.length, 16);
      assert.ok(Math.abs(Math.hypot(...r.vector) - 1) < 1e-5, 'features are L2-normalised');
    }
    // The stored features are the model's: spot-check three against an in-process encoding.
    const some = [rows[0], rows[20], rows[55]];
    const enc = await model.encodeImages(await model.processor.preprocessImages(some.map((r) => r.path)));
    some.forEach((r, i) => {
      const diff = Math.max(...r.vector.map((v, j) => Math.abs(v - enc.embeds.data[i * 16 + j])));
      assert.ok(diff < 1e-5, `${r.path}: ${diff}`);
    });
  });

  test('search --rerank 0: the top ITC hits are those of a brute-force cosine over all stored features', async () => {
    const rows = await stored(db);
    const q = await queryFeature(QUERY);
    const brute = rows.map((r) => ({ path: r.path, cosine: dot(r.vector, q) })).sort((a, b) => b.cosine - a.cosine);
    const out = cliJson('search', '--db', db, '--text', QUERY, '--rerank', '0', '--k', '5');
    assert.equal(out.reranked, false);
    assert.equal(out.results.length, 5);
    assert.equal(out.results[0].path, brute[0].path, 'top hit = brute-force argmax');
    out.results.forEach((h: { rank: number; path: string; cosine: number }, i: number) => {
      assert.equal(h.rank, i + 1);
      assert.ok(Math.abs(h.cosine - brute[i].cosine) < 1e-5, `rank ${i + 1}: ${h.cosine} vs ${brute[i].cosine}`);
      assert.ok(Math.abs(dot(rows.find((r) => r.path === h.path)!.vector, q) - h.cosine) < 1e-5);
    });
    // Same through the library, with a model instance.
    const lib = await searchByText(db, model, QUERY, { k: 3, rerank: 0 });
    assert.deepEqual(lib.hits.map((h) => h.path), out.results.slice(0, 3).map((h: { path: string }) => h.path));
  });

  test('search reranks the ITC top candidates with ITM and orders them by ITM match logit + cosine', async () => {
    const rows = await stored(db);
    const q = await queryFeature(QUERY);
    const top12 = new Set(rows.map((r) => ({ path: r.path, cosine: dot(r.vector, q) })).sort((a, b) => b.cosine - a.cosine).slice(0, 12).map((r) => r.path));
    const out = cliJson('search', '--db', db, '--text', QUERY, '--k', '4', '--rerank', '12');
    assert.equal(out.reranked, true);
    assert.equal(out.candidates, 12);
    assert.equal(out.results.length, 4);
    for (const [i, h] of out.results.entries()) {
      assert.ok(top12.has(h.path), `${h.path} is among the ITC top 12`);
      assert.equal(h.itm_logit, h.itm_logits[1]);
      assert.ok(Math.abs(h.combined - (h.itm_logits[1] + h.cosine)) < 1e-6);
      assert.ok(Math.abs(h.itm_probability - 1 / (1 + Math.exp(h.itm_logits[0] - h.itm_logits[1]))) < 1e-6);
      assert.ok(Math.abs(h.cosine - h.index_cosine) < 1e-5, 'unchanged files: fresh cosine = stored cosine');
      if (i > 0) assert.ok(out.results[i - 1].combined >= h.combined);
    }
    // The ITM logits are the model's for (image, query).
    const best = out.results[0];
    const enc = await model.encodeImages(await model.processor.preprocessImages([best.path]));
    const logits = await model.itmForImage(enc, 0, model.processor.tokenize([QUERY]));
    assert.ok(Math.abs(logits.data[0] - best.itm_logits[0]) < 1e-4 && Math.abs(logits.data[1] - best.itm_logits[1]) < 1e-4);
    // Nothing left out of the top 4 scores higher.
    const lib = await searchByText(db, model, QUERY, { k: 12, rerank: 12 });
    assert.deepEqual(lib.hits.slice(0, 4).map((h) => h.path), out.results.map((h: { path: string }) => h.path));

    const table = cli('search', '--db', db, '--text', QUERY, '--k', '3', '--rerank', '6');
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout.split('\n')[0], /^rank\s+score\s+match prob\s+itm logit\s+cosine\s+image$/);
    assert.equal(table.stdout.trim().split('\n').length, 5);
  });

  test('search --image finds the nearest indexed images by ITC (the image itself first)', async () => {
    const rows = await stored(db);
    const target = rows[7];
    const out = cliJson('search', '--db', db, '--image', target.path, '--k', '3');
    assert.equal(out.results[0].path, target.path);
    assert.ok(Math.abs(out.results[0].cosine - 1) < 1e-5);
    const brute = rows.map((r) => ({ path: r.path, cosine: dot(r.vector, target.vector) })).sort((a, b) => b.cosine - a.cosine);
    out.results.forEach((h: { cosine: number }, i: number) => assert.ok(Math.abs(h.cosine - brute[i].cosine) < 1e-5));
    const lib = await searchByImage(db, model, target.path, { k: 3 });
    assert.deepEqual(lib.hits.map((h) => h.path), out.results.map((h: { path: string }) => h.path));
  });

  test('re-running index with no change encodes nothing (CLI summary and vision-run counter)', async () => {
    const r = cli('index', folder, '--db', db, '--model', TINY, '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', 'nothing on stderr when it is not a terminal (no progress, no LanceDB log lines)');
    const again = JSON.parse(r.stdout);
    assert.deepEqual([again.added, again.updated, again.removed, again.unchanged, again.failed, again.encoded, again.total], [0, 0, 0, 56, 1, 0, 56]);
    const runs = model.visionRuns;
    const lib = await indexImages(folder, { db, model });
    assert.equal(model.visionRuns - runs, 0, 'the vision encoder did not run');
    assert.deepEqual([lib.added, lib.updated, lib.removed, lib.unchanged, lib.encoded], [0, 0, 0, 56, 0]);
  });

  test('a changed file is encoded again alone; a touched identical file is not; a deleted one is removed', async () => {
    const quoted = images.find((p) => p.includes("it's"))!;
    const before = new Map((await stored(db)).map((r) => [r.path, r]));

    // New content (and so a new size or mtime): re-encoded, the others untouched.
    await writeSyntheticImage(quoted, 999);
    let runs = model.visionRuns;
    let s = await indexImages(folder, { db, model });
    assert.deepEqual([s.added, s.updated, s.removed, s.unchanged, s.encoded], [0, 1, 0, 55, 1]);
    assert.equal(model.visionRuns - runs, 1);
    let rows = await stored(db);
    assertStoredOnce(rows, images);
    const changed = rows.find((r) => r.path === quoted)!;
    assert.equal(changed.sha256, sha256(quoted));
    assert.notDeepEqual([...changed.vector], [...before.get(quoted)!.vector]);
    for (const r of rows) if (r.path !== quoted) assert.deepEqual([...r.vector], [...before.get(r.path)!.vector]);

    // Same bytes, new mtime: recognised by its sha256, not encoded; the new mtime is recorded.
    const other = images[10];
    const later = new Date(Date.now() + 60_000);
    utimesSync(other, later, later);
    runs = model.visionRuns;
    s = await indexImages(folder, { db, model });
    assert.deepEqual([s.added, s.updated, s.unchanged, s.encoded], [0, 0, 56, 0]);
    assert.equal(model.visionRuns - runs, 0);
    rows = await stored(db);
    assert.equal(rows.find((r) => r.path === other)!.mtimeMs, statSync(other).mtimeMs);
    assertStoredOnce(rows, images);

    // Deleted: removed.
    unlinkSync(quoted);
    images = images.filter((p) => p !== quoted);
    const out = cliJson('index', folder, '--db', db, '--model', TINY);
    assert.deepEqual([out.added, out.updated, out.removed, out.unchanged, out.encoded, out.total], [0, 0, 1, 55, 0, 55]);
    assertStoredOnce(await stored(db), images);
  });

  test('images that vanished since indexing are skipped with a warning', async () => {
    const gone = images[0];
    const keep = readFileSync(gone);
    unlinkSync(gone);
    try {
      const r = cli('search', '--db', db, '--text', QUERY, '--k', '60', '--rerank', '60', '--json');
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout);
      assert.equal(out.results.length, 54);
      assert.ok(!out.results.some((h: { path: string }) => h.path === gone));
      assert.deepEqual(out.skipped, [{ path: gone, reason: 'file not found' }]);
      assert.match(r.stderr, new RegExp(`^blip-itm: warning: ${gone.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: file not found; skipped`, 'm'));

      const byImage = cli('search', '--db', db, '--image', images[1], '--k', '55', '--json');
      assert.equal(byImage.status, 0, byImage.stderr);
      const imgOut = JSON.parse(byImage.stdout);
      assert.equal(imgOut.results.length, 54);
      assert.deepEqual(imgOut.skipped.map((s: { path: string }) => s.path), [gone]);
    } finally {
      writeFileSync(gone, keep);
    }
  });

  test('an index of another model is refused with a clear error; --rebuild starts over; a copied model is the same model', async () => {
    const small = join(work, 'small');
    const smallDb = join(work, 'small-db');
    const smallImages = await writeImageFolder(small, 3, 500);
    cliJson('index', small, '--db', smallDb, '--model', TINY);

    const mixed = cli('index', small, '--db', smallDb, '--model', TINY_384);
    oneLineError(mixed, 1, /holds features of .*tiny .*16-d.* not of .*tiny-384 .*32-d.*cannot be mixed: use --rebuild/);
    const search = cli('search', '--db', smallDb, '--model', TINY_384, '--text', 'x');
    oneLineError(search, 1, /holds features of .*tiny .* not of .*tiny-384.*search with the model the index was built with/);
    await assert.rejects(async () => {
      const other = await BlipForImageTextRetrieval.fromPretrained(TINY_384);
      try {
        await searchByText(smallDb, other, 'x');
      } finally {
        await other.dispose();
      }
    }, /holds features of/);

    // Same weights elsewhere (new path, new mtimes): accepted, nothing to encode.
    const copy = join(work, 'tiny-copy');
    cpSync(TINY, copy, { recursive: true });
    const same = cliJson('index', small, '--db', smallDb, '--model', copy);
    assert.deepEqual([same.unchanged, same.encoded], [3, 0]);
    assert.equal((await fingerprintWeights([join(copy, 'model.safetensors')])).fingerprint, (await modelIdentity(model)).fingerprint);

    // Without --model, search and index use the index's model.
    assert.equal(cliJson('search', '--db', smallDb, '--text', 'x', '--k', '2', '--rerank', '0').results.length, 2);

    const rebuilt = cliJson('index', small, '--db', smallDb, '--model', TINY_384, '--rebuild');
    assert.deepEqual([rebuilt.added, rebuilt.total, rebuilt.model_identity.dims], [3, 3, 32]);
    assertStoredOnce(await stored(smallDb), smallImages);
    const again = cliJson('index', small, '--db', smallDb);
    assert.deepEqual([again.unchanged, again.encoded], [3, 0]);
  });

  test('a list file: relative paths, missing entries listed as failed, the index mirrors the list', async () => {
    const listDb = join(work, 'list-db');
    const listFile = join(folder, 'list.txt');
    const listed = images.slice(0, 4);
    writeFileSync(listFile, `# some images\n${listed.map((p) => p.slice(folder.length + 1)).join('\n')}\n\nmissing.png\n`);
    const first = cliJson('index', listFile, '--db', listDb, '--model', TINY);
    assert.deepEqual([first.added, first.failed, first.total], [4, 1, 4]);
    assert.deepEqual(first.failures, [{ path: join(folder, 'missing.png'), error: 'file not found' }]);
    writeFileSync(listFile, `${listed.slice(1).join('\n')}\n`);
    const second = cliJson('index', listFile, '--db', listDb, '--model', TINY);
    assert.deepEqual([second.added, second.removed, second.unchanged, second.total], [0, 1, 3, 3]);
    assertStoredOnce(await stored(listDb), listed.slice(1));

    const collected = await collectImages(listFile);
    assert.equal(collected.scope.kind, 'list');
    const walked = await collectImages(folder);
    assert.deepEqual(walked.files, [...images, broken].sort());
    assert.ok(inScope(walked.scope, join(folder, 'a', 'b.png')));
    assert.ok(!inScope(walked.scope, `${folder}-other/b.png`));
  });

  test('a path stored twice (foreign write) ends up stored once', async () => {
    const index = await ImageIndex.open(db);
    const [row] = await index.get([images[5]]);
    index.close();
    const writer = await ImageIndex.openForWriting(db, await modelIdentity(model));
    await writer.put([row], []); // no delete: a duplicate
    writer.close();
    assert.equal((await stored(db)).filter((r) => r.path === images[5]).length, 2);
    const s = await indexImages(folder, { db, model });
    assert.deepEqual([s.updated, s.encoded], [1, 1]);
    assertStoredOnce(await stored(db), images);
  });

  test('progress line: bar, count, images/s, time left', () => {
    assert.equal(
      formatIndexProgress({ done: 37, total: 120, encoded: 36, failed: 1, elapsedMs: 11_500, rate: 3.217, etaSeconds: 25.8 }, 10),
      'indexing  [###-------]  37/120  3.2 images/s  ETA 0:26  1 failed',
    );
    assert.equal(formatIndexProgress({ done: 0, total: 5, encoded: 0, failed: 0, elapsedMs: 0, rate: 0 }, 4), 'indexing  [----]  0/5');
  });

  test('usage errors exit 2; runtime errors exit 1', () => {
    oneLineError(cli('index', '--db', db), 2, /give exactly one folder or list file/);
    oneLineError(cli('index', folder, '--db', db, '--batch-size', '0'), 2, /--batch-size must be an integer >= 1/);
    oneLineError(cli('search', '--db', db), 2, /give either --text/);
    oneLineError(cli('search', '--db', db, '--text', 'x', '--image', images[0]), 2, /give either --text/);
    oneLineError(cli('search', '--db', db, '--text', 'x', '--k', '0'), 2, /--k must be an integer >= 1/);
    oneLineError(cli('search', '--db', db, '--image', images[0], '--rerank', '5'), 2, /--rerank applies to --text/);
    oneLineError(cli('search', '--db', join(work, 'nothing-here'), '--text', 'x'), 1, /no image index at .*nothing-here/);
    oneLineError(cli('index', join(work, 'no-such-folder'), '--db', db), 1, /no-such-folder: no such folder or list file/);
    mkdirSync(join(work, 'not-an-index'));
    writeFileSync(join(work, 'not-an-index', 'precious.txt'), 'keep me');
    oneLineError(cli('index', folder, '--db', join(work, 'not-an-index'), '--model', TINY), 1, /exists and is not a blip-itm image index/);
    assert.equal(readFileSync(join(work, 'not-an-index', 'precious.txt'), 'utf8'), 'keep me');
  });

  test('index killed mid-run (SIGKILL) resumes without re-encoding what was stored, every image stored once', async () => {
    const many = join(work, 'many');
    const manyDb = join(work, 'many-db');
    const manyImages = await writeImageFolder(many, 150, 1000);
    const child = spawn(process.execPath, [...CLI, 'index', many, '--db', manyDb, '--model', TINY, '--batch-size', '1', '--json'], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    let running = true;
    void exited.then(() => (running = false));

    // Wait until some rows are committed, then kill.
    let seen = 0;
    const deadline = Date.now() + 60_000;
    while (running && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 15));
      try {
        const index = await ImageIndex.open(manyDb);
        seen = await index.count();
        index.close();
      } catch {
        continue; // not created yet
      }
      if (seen >= 10) break;
    }
    assert.ok(running, `index finished before it could be killed (saw ${seen} rows); stderr:\n${stderr}`);
    child.kill('SIGKILL');
    assert.equal(await exited, null);

    const atKill = (await stored(manyDb)).length;
    assert.ok(atKill >= seen && atKill < 150, `killed mid-run: ${atKill} of 150 stored`);
    const resumed = cliJson('index', many, '--db', manyDb, '--model', TINY);
    assert.equal(resumed.unchanged, atKill, 'what was stored is not encoded again');
    assert.equal(resumed.added, 150 - atKill);
    assert.equal(resumed.encoded, 150 - atKill);
    assert.equal(resumed.total, 150);
    assertStoredOnce(await stored(manyDb), manyImages);
  });
});
