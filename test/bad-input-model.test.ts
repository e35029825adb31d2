import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MAX_THREADS_PER_CPU, parseThreads } from '../src/cli/args.js';
import { UsageError } from '../src/errors.js';
import { stackMbFor } from '../src/runtime/ort-env.js';
import { assertCleanError, cli, IMAGE, SMALL_IMAGE, TINY, tempDir, tinyConfig, tinyCopy, tinyWeightsWith } from './helpers/bad-input.js';

/**
 * Bad checkpoints and arguments through the CLI (issue #9): sizes trusted before they are checked,
 * NaN/Inf weights, broken tokenizer files, damaged indexes, bad numbers, and command lines long
 * enough to crash onnxruntime-node's environment set-up.
 */

let dir: string;
before(() => {
  dir = tempDir();
});
after(() => rmSync(dir, { recursive: true, force: true }));

const score = (model: string, ...extra: string[]) => cli(['score', '--model', model, '--image', IMAGE, '--text', 'a cat', ...extra]);

describe('configs are checked against the weights before anything is built', () => {
  test('10^9 text layers, 10^7 vision layers: refused naming config.json, in little memory', () => {
    const huge = tinyCopy(dir, 'layers', { 'config.json': tinyConfig((c) => { c.text_config.num_hidden_layers = 1e9; }) });
    assertCleanError(score(huge), 1, /config\.json: text_config\.num_hidden_layers is 1000000000 but .*model\.safetensors holds 2 such layers/, { mb: 500 });
    const vision = tinyCopy(dir, 'vlayers', { 'config.json': tinyConfig((c) => { c.vision_config.num_hidden_layers = 1e7; }) });
    assertCleanError(score(vision), 1, /vision_config\.num_hidden_layers is 10000000/, { mb: 500 });
  });

  test('preprocessor size 32768: refused naming preprocessor_config.json before resizing', () => {
    const pre = JSON.parse(readFileSync(join(TINY, 'preprocessor_config.json'), 'utf8'));
    pre.size = { height: 32768, width: 32768 };
    const big = tinyCopy(dir, 'presize', { 'preprocessor_config.json': JSON.stringify(pre) });
    assertCleanError(score(big), 1, /preprocessor_config\.json: "size" is 32768x32768 but config\.json vision_config\.image_size is 32/, { mb: 500 });
  });

  test('a config size that disagrees with a weight shape names the config fields', () => {
    const wide = tinyCopy(dir, 'imgsize', { 'config.json': tinyConfig((c) => { c.vision_config.image_size = 4096; }) });
    assertCleanError(score(wide), 1, /config\.json: vision_config\.image_size, patch_size and hidden_size imply weight "vision_model\.embeddings\.position_embedding"/);
  });
});

describe('NaN/Inf checkpoints are refused, never printed as scores', () => {
  test('NaN in the vision projection, Inf in the ITM head', async () => {
    const nan = tinyCopy(dir, 'nan', { 'model.safetensors': await tinyWeightsWith('vision_proj.weight', NaN) });
    assertCleanError(score(nan, '--json'), 1, /model\.safetensors: the checkpoint produced NaN\/Inf \(image features\)/);
    const inf = tinyCopy(dir, 'inf', { 'model.safetensors': await tinyWeightsWith('itm_head.bias', Infinity) });
    assertCleanError(score(inf), 1, /the checkpoint produced NaN\/Inf \(ITM logits\)/);
  });
});

describe('broken tokenizer files are refused at load, naming the file (exit 1)', () => {
  const vocab = () => readFileSync(join(TINY, 'vocab.txt'), 'utf8').split('\n');
  test('vocab.txt without its [UNK] line, one-line vocab, unk_token naming nothing, too many tokens', () => {
    const noUnk = tinyCopy(dir, 'no-unk', { 'vocab.txt': vocab().filter((l) => l !== '[UNK]').join('\n') });
    // The fixture's tokenizer_config.json lists [UNK] with its id, so the lines after it shift
    // under a listed token; the count against the embedding gives it away.
    assertCleanError(score(noUnk), 1, /vocab\.txt: the vocabulary has 30521 tokens \(\+2 added\) but config\.json text_config\.vocab_size is 30524/);
    const bare = tinyCopy(dir, 'no-unk-bare', { 'vocab.txt': vocab().filter((l) => l !== '[UNK]').join('\n'), 'tokenizer_config.json': '{}', 'special_tokens_map.json': '{}', 'added_tokens.json': '{}' });
    assertCleanError(cli(['tokenize', '--model', bare, '--text', 'a cat']), 1, /vocab\.txt: unk_token "\[UNK\]" is not a token of the vocabulary/);
    const oneLine = tinyCopy(dir, 'one-line', { 'vocab.txt': '[PAD]\n' });
    assertCleanError(cli(['tokenize', '--model', oneLine, '--text', 'a cat']), 1, /vocab\.txt: .*is not a token of the vocabulary/);
    const cfg = JSON.parse(readFileSync(join(TINY, 'tokenizer_config.json'), 'utf8'));
    cfg.unk_token = '<nowhere>';
    const badUnk = tinyCopy(dir, 'bad-unk', { 'tokenizer_config.json': JSON.stringify(cfg), 'special_tokens_map.json': '{}' });
    assertCleanError(score(badUnk), 1, /vocab\.txt: unk_token "<nowhere>" is not a token of the vocabulary/);
    const extra = vocab();
    for (let i = 0; i < 100; i++) extra.splice(2000, 0, `extra${i}`);
    const long = tinyCopy(dir, 'long-vocab', { 'vocab.txt': extra.join('\n') });
    assertCleanError(score(long), 1, /vocab\.txt: token id \d+ .*outside the word embedding of 30524 rows/);
  });

  test('a vocabulary of the right specials but no English words', () => {
    const random = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...Array.from({ length: 30517 }, (_, i) => `zq${i.toString(36)}`)];
    const r = tinyCopy(dir, 'random-vocab', { 'vocab.txt': random.join('\n') });
    assertCleanError(score(r), 1, /vocab\.txt: the vocabulary \(30522 tokens\) has none of the words/);
  });
});

describe('numbers in flags', () => {
  test('--threads: decimal integers only, capped per CPU with a warning', () => {
    for (const bad of ['0x10', ' 4', '1e3', '4.0', '0', '', '+4', '-1']) {
      assert.throws(() => parseThreads(bad, 2), (e: unknown) => e instanceof UsageError && /--threads must be a positive integer/.test(e.message), bad);
    }
    assert.equal(parseThreads('8', 2), 8);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      assert.equal(parseThreads('1024', 2), MAX_THREADS_PER_CPU * 2);
    } finally {
      // emitWarning is delivered on the next tick.
      setImmediate(() => process.off('warning', onWarning));
    }
    return new Promise<void>((resolve) => setImmediate(() => {
      assert.equal(warnings.length, 1);
      assert.match(warnings[0], /--threads 1024 is more than 4 per CPU \(2 available\); using 8/);
      resolve();
    }));
  });

  test('CLI: "--threads -1" is one line, not Node\'s three-line "ambiguous"; a hex count exits 2', () => {
    assertCleanError(score(TINY, '--threads', '-1'), 2, /--threads needs a value; one starting with "-" must be written --threads=<value>/);
    assertCleanError(score(TINY, '--threads=0x10'), 2, /--threads must be a positive integer \(decimal digits\), got "0x10"/);
    assertCleanError(cli(['rank', '--model', TINY, '--image', IMAGE, '--texts', '-', '--top', ' 3'], { input: 'a\n' }), 2, /--top must be an integer >= 1/);
  });
});

describe('long command lines (onnxruntime-node SIGSEGV at ~29 KB of arguments)', () => {
  test('the environment worker\'s stack grows with the command line', () => {
    assert.ok(stackMbFor(30_000) >= 16 && stackMbFor(1 << 20) >= 300);
  });

  test('a 30,000-character caption scores as the same caption read from a file', () => {
    const caption = Array.from({ length: 6000 }, (_, i) => `cat${i % 10} `).join('').slice(0, 30_000);
    assert.equal(caption.length, 30_000);
    const long = cli(['score', '--model', TINY, '--image', IMAGE, '--text', caption, '--json']);
    assert.equal(long.signal, null, 'no crash');
    assert.equal(long.status, 0, long.stderr);
    const file = join(dir, 'caption.txt');
    writeFileSync(file, `${caption}\n`);
    const ranked = cli(['rank', '--model', TINY, '--image', IMAGE, '--texts', file, '--json']);
    assert.equal(ranked.status, 0, ranked.stderr);
    const pair = JSON.parse(long.stdout).pairs[0];
    const entry = JSON.parse(ranked.stdout).ranking[0];
    assert.ok(Math.abs(pair.cosine - entry.cosine) < 1e-6);
    assert.ok(Math.abs(pair.itm_probability - entry.itm_probability) < 1e-6);
  });

  test('1,200 --image arguments score correctly, and so does --images-from', () => {
    const args = Array.from({ length: 1200 }, () => ['--image', SMALL_IMAGE]).flat();
    const many = cli(['score', '--model', TINY, ...args, '--text', 'a cat', '--json'], { timeoutMs: 60_000 });
    assert.equal(many.signal, null, 'no crash');
    assert.equal(many.status, 0, many.stderr);
    const pairs = JSON.parse(many.stdout).pairs as Array<{ cosine: number; itm_probability: number }>;
    assert.equal(pairs.length, 1200);
    const list = join(dir, 'images.txt');
    writeFileSync(list, `${SMALL_IMAGE}\n\n${SMALL_IMAGE}\r\n`);
    const fromFile = cli(['score', '--model', TINY, '--images-from', list, '--text', 'a cat', '--json']);
    assert.equal(fromFile.status, 0, fromFile.stderr);
    const two = JSON.parse(fromFile.stdout).pairs as typeof pairs;
    assert.equal(two.length, 2);
    for (const p of [...pairs, two[1]]) {
      assert.equal(p.cosine, two[0].cosine);
      assert.equal(p.itm_probability, two[0].itm_probability);
    }
  });
});

describe('damaged image indexes', () => {
  test('a deleted images table, or deleted data files, say which index is damaged and how to rebuild it', () => {
    const db = join(dir, 'index');
    const built = cli(['index', 'test/fixtures/images/syn_cats.webp', '--db', db, '--model', TINY, '--json']);
    assert.equal(built.status, 0, built.stderr);
    const search = () => cli(['search', '--db', db, '--text', 'a cat']);
    assert.equal(search().status, 0);
    const data = join(db, 'images.lance', 'data');
    for (const f of readdirSync(data)) rmSync(join(data, f));
    assertCleanError(search(), 1, /index .*index is damaged \(.*\); `blip-itm index <folder> --db .* --rebuild` rebuilds it/);
    rmSync(join(db, 'images.lance'), { recursive: true });
    assertCleanError(search(), 1, /index .*index is damaged \(files of it are missing\)/);
  });
});
