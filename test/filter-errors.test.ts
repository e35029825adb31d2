import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filterCommand } from '../src/cli/filter.js';
import type { Reporter } from '../src/cli/output.js';
import { BlipError, UsageError } from '../src/errors.js';
import { FIXTURES } from './helpers/goldens.js';
import { TINY } from './helpers/filter-cli.js';
import { readParts } from './helpers/filter-parts.js';

const quiet: Reporter = { status() {}, done() {} };
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'blip-filter-errors-'));
  mkdirSync(join(dir, 'root'));
  copyFileSync(join(FIXTURES, 'images', 'syn_cats.webp'), join(dir, 'root', 'cats.webp'));
  writeFileSync(join(dir, 'outside.png'), 'not inside the root');
  writeFileSync(join(dir, 'rows.jsonl'), [
    { id: 'ok', image: 'cats.webp', caption: 'two cats on a blanket' },
    { id: 'escape', image: '../outside.png', caption: 'a cat' },
    { id: 'number', image: 'cats.webp', caption: 5 },
    { id: 'null', image: 'cats.webp', caption: null },
    { id: 'noimage', image: null, caption: 'a cat' },
  ].map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(join(dir, 'rows.csv'), 'id,picture,caption\n1,cats.webp,a cat\n');
  writeFileSync(join(dir, 'rows.txt'), 'x');
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const filter = (...args: string[]) => filterCommand(['--model', TINY, ...args], quiet);

async function rejectsWith(args: string[], type: typeof BlipError, pattern: RegExp): Promise<void> {
  await assert.rejects(filter(...args), (e: unknown) => {
    assert.ok(e instanceof type, `${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /\n/, 'one line');
    return true;
  });
}

test('bad options are one-line usage errors naming the option', async () => {
  const out = join(dir, 'never');
  const input = join(dir, 'rows.jsonl');
  await rejectsWith(['--input', input], UsageError, /give --output/);
  await rejectsWith(['--output', out], UsageError, /give --input/);
  await rejectsWith(['--input', input, '--output', out, '--threshold', '1.5'], UsageError, /--threshold must be a number from 0 to 1, got "1.5"/);
  await rejectsWith(['--input', input, '--output', out, '--min-cosine', 'x'], UsageError, /--min-cosine must be a number from -1 to 1/);
  await rejectsWith(['--input', input, '--output', out, '--format', 'csv'], UsageError, /--format must be parquet or jsonl/);
  await rejectsWith(['--input', input, '--output', out, '--unit-rows', '0'], UsageError, /--unit-rows must be an integer >= 1/);
  await rejectsWith(['--input', input, '--output', out, '--input-format', 'xml'], UsageError, /--input-format must be jsonl, csv, parquet or webdataset/);
  await rejectsWith(['--input', input, '--output', out, '--enqueue-only'], UsageError, /--enqueue-only needs --queue/);
  await rejectsWith(['--input', input, '--output', out, '--queue', 'http://x:1'], UsageError, /--queue must be redis:\/\/host:port\[\/db\]/);
  await rejectsWith(['--input', input, '--output', out, '--bogus'], UsageError, /filter: Unknown option '--bogus'/);
});

test('bad inputs are one-line errors naming the file and what was expected', async () => {
  const out = join(dir, 'never');
  await rejectsWith(['--input', join(dir, 'rows.txt'), '--output', out], BlipError, /rows\.txt: cannot tell the input format from the extension/);
  await rejectsWith(['--input', join(dir, 'nope-*.csv'), '--output', out], BlipError, /--input .*nope-\*\.csv: no file matches/);
  await rejectsWith(['--input', join(dir, 'missing.csv'), '--output', out], BlipError, /missing\.csv: file not found/);
  await rejectsWith(['--input', join(dir, 'rows.csv'), '--output', out, '--image-root', join(dir, 'root')], BlipError, /rows\.csv: no column "image" \(--image-col\); columns: "id", "picture", "caption"/);
  await rejectsWith(['--input', join(dir, 'rows.jsonl'), '--output', out, '--image-root', join(dir, 'nowhere')], BlipError, /--image-root .*nowhere: folder not found/);
});

test('rows that cannot be scored get their error and keep=false; the others are scored', async () => {
  const output = join(dir, 'out');
  const summary = JSON.parse(await filter('--input', join(dir, 'rows.jsonl'), '--image-root', join(dir, 'root'), '--output', output, '--threshold', '0', '--json'));
  assert.equal(summary.rows, 5);
  assert.equal(summary.errors, 4);
  assert.equal(summary.kept, 1);
  const rows = new Map((await readParts(output, 'id')).map((r) => [r.id, r]));
  assert.equal(rows.get('ok')!.error, null);
  assert.equal(rows.get('ok')!.keep, true);
  assert.match(rows.get('escape')!.error!, /\.\.\/outside\.png: image path escapes the root folder/);
  assert.equal(rows.get('number')!.error, 'the caption is not text');
  assert.equal(rows.get('null')!.error, 'no caption (the text column is empty)');
  assert.equal(rows.get('noimage')!.error, 'no image (the image column is empty)');
  for (const id of ['escape', 'number', 'null', 'noimage']) assert.equal(rows.get(id)!.keep, false);
  // The same run again: nothing to do, the output is kept.
  const again = JSON.parse(await filter('--input', join(dir, 'rows.jsonl'), '--image-root', join(dir, 'root'), '--output', output, '--threshold', '0', '--json'));
  assert.equal(again.units_run, 0);
  assert.equal(again.resumed, true);
});

test('another model into the same output is refused; --overwrite replaces the run', async () => {
  const output = join(dir, 'out-model');
  const args = ['--input', join(dir, 'rows.jsonl'), '--image-root', join(dir, 'root'), '--output', output, '--json'];
  await filter(...args);
  await assert.rejects(filterCommand(['--model', `${FIXTURES}/models/tiny-384`, ...args], quiet), (e: unknown) => {
    assert.ok(e instanceof BlipError);
    assert.match(e.message, /the output folder holds another filter run: it was made with another model .*tiny.*; use --overwrite/);
    return true;
  });
  const replaced = JSON.parse(await filterCommand(['--model', `${FIXTURES}/models/tiny-384`, ...args, '--overwrite'], quiet));
  assert.equal(replaced.units_run, 1);
  assert.match(replaced.model, /tiny-384$/);
});

test('--pre-caption cleans captions as BLIP did; --itm-text-start reaches the ITM scores', async () => {
  writeFileSync(join(dir, 'raw.jsonl'), `${JSON.stringify({ image: 'cats.webp', caption: 'Two CATS;  on a (pink) blanket!!' })}\n`);
  writeFileSync(join(dir, 'clean.jsonl'), `${JSON.stringify({ image: 'cats.webp', caption: 'two cats on a pink blanket' })}\n`);
  const scores = async (input: string, ...extra: string[]) => {
    const output = join(dir, `out-${input}-${extra.join('')}`);
    await filter('--input', join(dir, input), '--image-root', join(dir, 'root'), '--output', output, ...extra);
    return (await readParts(output, '__row__'))[0];
  };
  const cleaned = await scores('raw.jsonl', '--pre-caption');
  const plain = await scores('clean.jsonl');
  const raw = await scores('raw.jsonl');
  assert.deepEqual(cleaned.itm_logits, plain.itm_logits);
  assert.equal(cleaned.cosine, plain.cosine);
  assert.equal(cleaned.caption, 'Two CATS;  on a (pink) blanket!!', 'the output keeps the input caption');
  assert.notDeepEqual(raw.itm_logits, plain.itm_logits);
  const enc = await scores('clean.jsonl', '--itm-text-start', 'enc');
  assert.notDeepEqual(enc.itm_logits, plain.itm_logits, 'enc puts [ENC] first: other ITM logits');
  assert.equal(enc.cosine, plain.cosine, 'ITC does not depend on the ITM start token');
});
