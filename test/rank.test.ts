import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';
import { matchProbability } from '../src/tensor.js';
import { parseCaptionLines, type RankEntry } from '../src/cli/rank.js';
import { rankCaptions } from '../src/retrieval/rank-captions.js';
import { FIXTURES } from './helpers/goldens.js';

const TINY = `${FIXTURES}/models/tiny`;
const IMAGE = `${FIXTURES}/images/coco_000000039769.png`;
const CAPTIONS = [
  'two cats laying on a pink blanket next to remote controls',
  'a rocket on its launch pad',
  'a cup of coffee on a saucer',
  'A tabby cat looking at the camera, with long white whiskers and green eyes.',
  'cats',
];

function cli(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    input,
    env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: `${FIXTURES}/__no_cache__` },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('rank', () => {
  let model: BlipForImageTextRetrieval;
  /** Each caption scored alone against the image (model API, one pair per call). */
  const alone: Array<{ logits: [number, number]; cosine: number }> = [];
  let dir: string;

  before(async () => {
    model = await BlipForImageTextRetrieval.fromPretrained(TINY);
    for (const text of CAPTIONS) {
      const inputs = await model.processor.call({ images: IMAGE, text });
      const itm = (await model.forward(inputs)).data;
      const cos = (await model.forward(inputs, { useItmHead: false })).data;
      alone.push({ logits: [itm[0], itm[1]], cosine: cos[0] });
    }
    dir = mkdtempSync(join(tmpdir(), 'blip-rank-'));
  });
  after(async () => {
    await model.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('rankCaptions: every caption gets the scores it gets alone; ordered by ITM probability', async () => {
    const visionBefore = model.visionRuns;
    const kvBefore = model.crossKVRuns;
    const ranked = await rankCaptions(model, IMAGE, CAPTIONS);
    assert.equal(model.visionRuns - visionBefore, 1, 'the image is encoded once');
    assert.equal(model.crossKVRuns - kvBefore, 1, 'one cross-attention K/V pass');
    assert.deepEqual(ranked.map((r) => r.index).sort(), [0, 1, 2, 3, 4]);
    for (const r of ranked) {
      assert.equal(r.text, CAPTIONS[r.index]);
      assert.ok(Math.abs(r.cosine - alone[r.index].cosine) <= 1e-5, `cosine of ${r.index}`);
      assert.ok(r.itmLogits !== null);
      assert.ok(Math.abs(r.itmLogits[0] - alone[r.index].logits[0]) <= 1e-5 && Math.abs(r.itmLogits[1] - alone[r.index].logits[1]) <= 1e-5, `ITM of ${r.index}`);
      assert.ok(Math.abs(r.itmProbability! - matchProbability(...alone[r.index].logits)) <= 1e-5);
    }
    for (let i = 1; i < ranked.length; i++) assert.ok(ranked[i - 1].itmProbability! >= ranked[i].itmProbability!);
  });

  test('rankCaptions: --rerank K reranks the K best by cosine; they come first, the rest by cosine', async () => {
    const byCosine = CAPTIONS.map((_, i) => i).sort((a, b) => alone[b].cosine - alone[a].cosine);
    const ranked = await rankCaptions(model, IMAGE, CAPTIONS, { rerank: 2 });
    const reranked = ranked.slice(0, 2);
    assert.deepEqual(reranked.map((r) => r.index).sort(), byCosine.slice(0, 2).sort());
    assert.ok(reranked.every((r) => r.itmLogits !== null));
    assert.ok(reranked[0].itmProbability! >= reranked[1].itmProbability!);
    assert.deepEqual(ranked.slice(2).map((r) => r.index), byCosine.slice(2));
    assert.ok(ranked.slice(2).every((r) => r.itmLogits === null && r.itmProbability === null));
    const cosineOnly = await rankCaptions(model, IMAGE, CAPTIONS, { rerank: 0 });
    assert.deepEqual(cosineOnly.map((r) => r.index), byCosine);
  });

  test('rankCaptions: by default at most 128 captions are reranked, the best by cosine', async () => {
    const many = Array.from({ length: 131 }, (_, i) => `caption number ${i} with ${i % 7} cats`);
    const ranked = await rankCaptions(model, IMAGE, many);
    const reranked = ranked.filter((r) => r.itmLogits !== null);
    assert.equal(reranked.length, 128);
    const minReranked = Math.min(...reranked.map((r) => r.cosine));
    assert.ok(ranked.slice(128).every((r) => r.itmLogits === null && r.cosine <= minReranked));
  });

  test('blip-itm rank --json equals scoring each caption alone (file input, line numbers, empty lines skipped)', () => {
    const file = join(dir, 'captions.txt');
    writeFileSync(file, `${CAPTIONS[0]}\r\n\n${CAPTIONS.slice(1).join('\n')}\n`);
    const r = cli(['rank', '--model', TINY, '--image', IMAGE, '--texts', file, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { model: string; image: string; captions: number; reranked: number; itm_text_start: string; ranking: RankEntry[] };
    assert.equal(out.model, TINY);
    assert.equal(out.image, IMAGE);
    assert.equal(out.captions, 5);
    assert.equal(out.reranked, 5);
    assert.equal(out.itm_text_start, 'cls');
    assert.deepEqual(out.ranking.map((e) => e.rank), [1, 2, 3, 4, 5]);
    const lineOf = [1, 3, 4, 5, 6];
    for (const e of out.ranking) {
      const i = CAPTIONS.indexOf(e.text);
      assert.ok(i >= 0);
      assert.equal(e.line, lineOf[i]);
      assert.ok(Math.abs(e.cosine - alone[i].cosine) <= 1e-5);
      assert.ok(Math.abs(e.itm_logits![0] - alone[i].logits[0]) <= 1e-5 && Math.abs(e.itm_logits![1] - alone[i].logits[1]) <= 1e-5);
      assert.ok(Math.abs(e.itm_probability! - matchProbability(...alone[i].logits)) <= 1e-5);
    }
  });

  test('blip-itm rank reads stdin; --top and --rerank; a table without --json', () => {
    const input = CAPTIONS.join('\n');
    const r = cli(['rank', '--model', TINY, '--image', IMAGE, '--texts', '-', '--rerank', '1', '--top', '3', '--json'], input);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { reranked: number; ranking: RankEntry[] };
    assert.equal(out.reranked, 1);
    assert.equal(out.ranking.length, 3);
    assert.ok(out.ranking[0].itm_probability !== null);
    assert.ok(out.ranking.slice(1).every((e) => e.itm_probability === null && e.itm_logits === null));
    assert.ok(out.ranking[1].cosine >= out.ranking[2].cosine);
    const table = cli(['rank', '--model', TINY, '--image', IMAGE, '--texts', '-', '--rerank', '2'], input);
    assert.equal(table.status, 0, table.stderr);
    const lines = table.stdout.trim().split('\n');
    assert.match(lines[0], /^rank\s+match probability\s+cosine\s+line\s+caption$/);
    assert.equal(lines.length, 2 + CAPTIONS.length);
    assert.match(lines[2], /^\s*1\s+0\.\d{4}\s+-?\d\.\d{4}\s+\d\s+\S/);
    assert.match(lines[4], /^\s*3\s+-\s+-?\d\.\d{4}\s+\d\s+\S/);
  });

  test('blip-itm rank errors: usage exit 2, missing files exit 1', () => {
    const noImage = cli(['rank', '--texts', '-'], 'x');
    assert.equal(noImage.status, 2);
    assert.match(noImage.stderr, /^blip-itm: rank: give --image/);
    const top = cli(['rank', '--image', IMAGE, '--texts', '-', '--top', '0'], 'x');
    assert.equal(top.status, 2);
    assert.match(top.stderr, /--top must be an integer >= 1/);
    const empty = cli(['rank', '--image', IMAGE, '--texts', '-'], '\n  \n');
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /no captions in stdin/);
    const missing = cli(['rank', '--image', IMAGE, '--texts', join(dir, 'none.txt')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /none\.txt: file not found/);
  });

  test('parseCaptionLines: LF or CR LF, blank lines skipped, 1-based line numbers', () => {
    assert.deepEqual(parseCaptionLines('a\r\n\r\n b \n\t\nc'), [{ line: 1, text: 'a' }, { line: 3, text: ' b ' }, { line: 5, text: 'c' }]);
  });
});
