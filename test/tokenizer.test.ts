import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CheckpointError, UsageError } from '../src/errors.js';
import { BlipTokenizer } from '../src/preprocessing/tokenizer.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, 'fixtures');
const tinyDir = path.join(fixtures, 'models', 'tiny');
const refDir = path.join(fixtures, 'reference-configs');

interface FixtureText {
  id: string;
  text: string;
}
interface PlainGolden {
  input_ids: number[];
  attention_mask: number[];
  tokens: string[];
}
interface BatchGolden {
  texts: string[];
  input_ids: number[][];
  attention_mask: number[][];
}
interface Goldens {
  plain: Record<string, PlainGolden>;
  trunc35: Record<string, { input_ids: number[]; attention_mask: number[] }>;
  batches: { longest8: BatchGolden; trunc35_padded: BatchGolden };
}

const texts: FixtureText[] = JSON.parse(await readFile(path.join(fixtures, 'texts.json'), 'utf8'));
const goldens: Goldens = JSON.parse(await readFile(path.join(fixtures, 'goldens', 'tokenizer_goldens.json'), 'utf8'));
const textById = new Map(texts.map((t) => [t.id, t.text]));

/** Collects warnings instead of printing them. */
function collector(): { warnings: string[]; onWarning: (m: string) => void } {
  const warnings: string[] = [];
  return { warnings, onWarning: (m) => warnings.push(m) };
}

const tempDirs: string[] = [];
async function tempFolder(files: Record<string, string | { copyFrom: string }>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'blip-tok-'));
  tempDirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    if (typeof content === 'string') await writeFile(path.join(dir, name), content);
    else await copyFile(content.copyFrom, path.join(dir, name));
  }
  return dir;
}
after(async () => {
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});

function checkBatch(tok: BlipTokenizer, golden: BatchGolden, options: Parameters<BlipTokenizer['call']>[1]): void {
  const batchTexts = golden.texts.map((id) => {
    const t = textById.get(id);
    assert.ok(t !== undefined, `unknown text id ${id}`);
    return t;
  });
  const out = tok.call(batchTexts, options);
  const rows = golden.input_ids.length;
  const width = golden.input_ids[0].length;
  assert.deepEqual(out.dims, [rows, width]);
  assert.deepEqual(out.inputIdsList, golden.input_ids);
  assert.deepEqual(out.attentionMaskList, golden.attention_mask);
  assert.ok(out.inputIds instanceof BigInt64Array);
  assert.deepEqual([...out.inputIds], golden.input_ids.flat().map(BigInt));
  assert.deepEqual([...out.attentionMask], golden.attention_mask.flat().map(BigInt));
}

describe('BlipTokenizer on the tiny fixture folder', () => {
  let tok: BlipTokenizer;
  before(async () => {
    tok = await BlipTokenizer.fromFolder(tinyDir, { onWarning: () => {} });
  });

  test('special token ids come from the files', () => {
    assert.equal(tok.padTokenId, 0);
    assert.equal(tok.unkTokenId, 100);
    assert.equal(tok.clsTokenId, 101);
    assert.equal(tok.sepTokenId, 102);
    assert.equal(tok.maskTokenId, 103);
    assert.equal(tok.bosTokenId, 30522);
    assert.equal(tok.decTokenId, 30522);
    assert.equal(tok.encTokenId, 30523);
    assert.equal(tok.blipTokensImplicit, false);
    assert.equal(tok.vocabSize, 30522);
    assert.equal(tok.size, 30524);
    assert.equal(tok.modelMaxLength, 512);
    assert.equal(tok.tokenToId('[ENC]'), 30523);
    assert.equal(tok.idToToken(30522), '[DEC]');
    assert.deepEqual(tok.specialTokens, ['[DEC]', '[UNK]', '[SEP]', '[PAD]', '[CLS]', '[MASK]', '[ENC]']);
  });

  test('plain encodings (no truncation) equal the goldens: ids, mask and word pieces', () => {
    assert.equal(texts.length, 32);
    for (const { id, text } of texts) {
      const g = goldens.plain[id];
      const enc = tok.encode(text, { truncation: false });
      assert.deepEqual(enc.inputIds, g.input_ids, id);
      assert.deepEqual(enc.attentionMask, g.attention_mask, id);
      assert.deepEqual(enc.tokens, g.tokens, id);
      assert.equal(enc.truncatedTokens, 0, id);
    }
    assert.equal(goldens.plain.t17_long.input_ids.length, 1122);
  });

  test('tokenize() gives the word pieces without [CLS]/[SEP]', () => {
    for (const { id, text } of texts) {
      assert.deepEqual(tok.tokenize(text), goldens.plain[id].tokens.slice(1, -1), id);
    }
  });

  test('truncation to 35 equals the goldens (last id stays [SEP])', () => {
    for (const { id, text } of texts) {
      const g = goldens.trunc35[id];
      const enc = tok.encode(text, { truncation: true, maxLength: 35 });
      assert.deepEqual(enc.inputIds, g.input_ids, id);
      assert.deepEqual(enc.attentionMask, g.attention_mask, id);
      assert.equal(enc.inputIds.at(-1), tok.sepTokenId, id);
      assert.ok(enc.inputIds.length <= 35, id);
    }
  });

  test('batch padded to the longest equals the goldens', () => {
    checkBatch(tok, goldens.batches.longest8, { padding: 'longest', truncation: false });
    // default padding is 'longest'
    checkBatch(tok, goldens.batches.longest8, { truncation: false });
  });

  test('truncated padded batch equals the goldens', () => {
    checkBatch(tok, goldens.batches.trunc35_padded, { padding: true, truncation: true, maxLength: 35 });
  });

  test('special-token strings typed in the text become their ids; look-alikes do not', () => {
    const lit = tok.encode('[CLS] a cat [SEP] on a couch [ENC] [DEC] [PAD] [MASK] [UNK]');
    assert.deepEqual(lit.inputIds, [101, 101, 1037, 4937, 102, 2006, 1037, 6411, 30523, 30522, 0, 103, 100, 102]);
    assert.deepEqual(lit.attentionMask, new Array(14).fill(1));
    const glued = tok.encode('x[ENC]y');
    assert.deepEqual(glued.tokens, ['[CLS]', 'x', '[ENC]', 'y', '[SEP]']);
    const lower = tok.encode('[cls] [enc]');
    assert.ok(!lower.inputIds.slice(1).includes(101));
    assert.ok(!lower.inputIds.includes(30523));
  });

  test('cleaning, whitespace, CJK, accents', () => {
    // control / format characters are deleted, so words merge
    assert.deepEqual(tok.tokenize('ab\u200bcd'), tok.tokenize('abcd'));
    assert.deepEqual(tok.tokenize('a\u0000b\u0007c'), tok.tokenize('abc'));
    // \t \n \r and Zs separate words; U+2028 too (Python's str.split)
    assert.deepEqual(tok.tokenize('cat\u00a0dog\u3000cat\u2028dog'), ['cat', 'dog', 'cat', 'dog']);
    assert.deepEqual(tok.tokenize('一只猫'), ['一', '[UNK]', '[UNK]']); // one token per ideograph
    assert.deepEqual(tok.tokenize('上一'), ['上', '一']);
    assert.deepEqual(tok.tokenize('Café'), ['cafe']);
    assert.deepEqual(tok.encode('').inputIds, [101, 102]);
    assert.deepEqual(tok.encode(' \t\n ').inputIds, [101, 102]);
    // a word over 100 code points is [UNK]
    assert.deepEqual(tok.tokenize('a'.repeat(101)), ['[UNK]']);
    assert.notDeepEqual(tok.tokenize('a'.repeat(100)), ['[UNK]']);
  });

  test("default truncation 'auto' cuts to the model maximum and warns", () => {
    const c = collector();
    const long = textById.get('t17_long') as string;
    const enc = tok.encode(long, { onWarning: c.onWarning });
    const plain = goldens.plain.t17_long.input_ids;
    assert.equal(enc.inputIds.length, 512);
    assert.deepEqual(enc.inputIds, [...plain.slice(0, 511), 102]);
    assert.equal(enc.truncatedTokens, 1122 - 512);
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0], /1122 tokens.*512/);

    // short texts: no warning
    tok.encode('two cats', { onWarning: c.onWarning });
    assert.equal(c.warnings.length, 1);

    // in a batch: one warning naming the text
    const batch = tok.call(['two cats', long], { onWarning: c.onWarning });
    assert.deepEqual(batch.dims, [2, 512]);
    assert.deepEqual(batch.truncatedTokens, [0, 610]);
    assert.equal(c.warnings.length, 2);
    assert.match(c.warnings[1], /#1 \(1122 tokens\)/);

    // explicit true: silent
    tok.encode(long, { truncation: true, onWarning: c.onWarning });
    assert.equal(c.warnings.length, 2);
  });

  test('the load-time warning sink is used by default', async () => {
    const c = collector();
    const t2 = await BlipTokenizer.fromFolder(tinyDir, { onWarning: c.onWarning });
    t2.encode(textById.get('t17_long') as string, { maxLength: 20 });
    assert.equal(c.warnings.length, 1);
  });

  test('padding options and shapes', () => {
    const out = tok.call(['two cats', 'a'], { padding: 'max_length', maxLength: 8 });
    assert.deepEqual(out.dims, [2, 8]);
    assert.deepEqual(out.inputIdsList, [
      [101, 2048, 8870, 102, 0, 0, 0, 0],
      [101, 1037, 102, 0, 0, 0, 0, 0],
    ]);
    assert.deepEqual(out.attentionMaskList, [
      [1, 1, 1, 1, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0, 0, 0],
    ]);
    assert.deepEqual(out.tokens[0], ['[CLS]', 'two', 'cats', '[SEP]']);
    const same = tok.call(['two cats', 'two dogs'], { padding: false });
    assert.deepEqual(same.dims, [2, 4]);
    assert.throws(() => tok.call(['two cats', 'a'], { padding: false }), UsageError);
    assert.throws(() => tok.call(['two cats here', 'a'], { padding: 'max_length', maxLength: 4, truncation: false }), UsageError);
    const empty = tok.call([]);
    assert.deepEqual(empty.dims, [0, 0]);
    assert.equal(empty.inputIds.length, 0);
  });

  test('argument errors', () => {
    assert.throws(() => tok.encode('two cats', { maxLength: 0 }), UsageError);
    assert.throws(() => tok.encode('two cats', { maxLength: 2.5 }), UsageError);
    assert.throws(() => tok.encode('two cats', { maxLength: 2, truncation: true }), UsageError);
    assert.deepEqual(tok.encode('', { maxLength: 2, truncation: true }).inputIds, [101, 102]);
    assert.deepEqual(tok.encode('two cats', { maxLength: 3, truncation: true }).inputIds, [101, 2048, 102]);
    assert.throws(() => tok.encode(42 as unknown as string), UsageError);
  });

  test('addSpecialTokens: false', () => {
    const enc = tok.encode('two cats', { addSpecialTokens: false });
    assert.deepEqual(enc.inputIds, [2048, 8870]);
    assert.deepEqual(tok.encode('two cats sleep', { addSpecialTokens: false, maxLength: 2, truncation: true }).inputIds, [
      2048, 8870,
    ]);
  });

  test('decode', () => {
    assert.equal(tok.decode(goldens.plain.t00_beach.input_ids, { skipSpecialTokens: true }), 'a woman and a dog sitting together in a beach.');
    assert.equal(tok.decode(goldens.plain.t05_tabby.input_ids), '[CLS] an orange tabby cat looks at the camera. [SEP]');
    assert.equal(tok.decode([30523n, 2048n, 8870n], { skipSpecialTokens: true }), 'two cats');
  });
});

describe('BlipTokenizer with the real Hub repo configuration', () => {
  let tok: BlipTokenizer;
  before(async () => {
    // The real repos name no [DEC]/[ENC] and have no added_tokens.json.
    const dir = await tempFolder({
      'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
      'tokenizer_config.json': { copyFrom: path.join(refDir, 'blip-itm-large-coco.tokenizer_config.json') },
      'special_tokens_map.json': { copyFrom: path.join(refDir, 'blip-itm-large-coco.special_tokens_map.json') },
    });
    tok = await BlipTokenizer.fromFolder(dir, { onWarning: () => {} });
  });

  test('[DEC]/[ENC] still get BLIP ids 30522/30523', () => {
    assert.equal(tok.decTokenId, 30522);
    assert.equal(tok.encTokenId, 30523);
    assert.equal(tok.blipTokensImplicit, true);
    assert.equal(tok.bosTokenId, undefined);
    assert.equal(tok.padTokenId, 0);
    assert.equal(tok.clsTokenId, 101);
    assert.equal(tok.sepTokenId, 102);
    assert.equal(tok.size, 30522);
    assert.equal(tok.idToToken(30523), '[ENC]');
    assert.equal(tok.tokenToId('[ENC]'), undefined);
  });

  test('ordinary text tokenises as in the goldens', () => {
    for (const { id, text } of texts) {
      if (id === 't19_special_literals') continue; // types [ENC]/[DEC] literally
      const g = goldens.plain[id];
      const enc = tok.encode(text, { truncation: false });
      assert.deepEqual(enc.inputIds, g.input_ids, id);
      assert.deepEqual(enc.tokens, g.tokens, id);
      assert.deepEqual(tok.encode(text, { truncation: true, maxLength: 35 }).inputIds, goldens.trunc35[id].input_ids, id);
    }
    checkBatch(tok, goldens.batches.trunc35_padded, { padding: 'longest', truncation: true, maxLength: 35 });
  });

  test('typed [ENC]/[DEC] are plain text there (as transformers loads these files); BERT specials still match', () => {
    const enc = tok.encode(textById.get('t19_special_literals') as string);
    assert.ok(!enc.inputIds.includes(30522) && !enc.inputIds.includes(30523));
    assert.deepEqual(enc.inputIds.slice(0, 5), [101, 101, 1037, 4937, 102]);
    assert.deepEqual(enc.inputIds.slice(-4), [0, 103, 100, 102]);
    assert.deepEqual(tok.tokenize('[ENC]').slice(0, 1), ['[']);
  });
});

describe('other folder layouts', () => {
  test('legacy layout: special_tokens_map.json + added_tokens.json, no added_tokens_decoder', async () => {
    const cfg = JSON.parse(await readFile(path.join(tinyDir, 'tokenizer_config.json'), 'utf8'));
    delete cfg.added_tokens_decoder;
    delete cfg.additional_special_tokens;
    delete cfg.bos_token;
    const dir = await tempFolder({
      'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
      'tokenizer_config.json': JSON.stringify(cfg),
      'special_tokens_map.json': { copyFrom: path.join(tinyDir, 'special_tokens_map.json') },
      'added_tokens.json': { copyFrom: path.join(tinyDir, 'added_tokens.json') },
    });
    const tok = await BlipTokenizer.fromFolder(dir);
    assert.equal(tok.decTokenId, 30522);
    assert.equal(tok.encTokenId, 30523);
    assert.equal(tok.bosTokenId, 30522);
    assert.equal(tok.blipTokensImplicit, false);
    for (const { id, text } of texts) {
      assert.deepEqual(tok.encode(text, { truncation: false }).inputIds, goldens.plain[id].input_ids, id);
    }
  });

  test('only tokenizer.json (vocab, added tokens and normalizer from it)', async () => {
    const lines = (await readFile(path.join(tinyDir, 'vocab.txt'), 'utf8')).split('\n');
    if (lines.at(-1) === '') lines.pop();
    const vocab: Record<string, number> = {};
    lines.forEach((t, i) => (vocab[t] = i));
    const added = (id: number, content: string) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    });
    const tokenizerJson = {
      version: '1.0',
      added_tokens: [
        added(0, '[PAD]'), added(100, '[UNK]'), added(101, '[CLS]'), added(102, '[SEP]'), added(103, '[MASK]'),
        added(30522, '[DEC]'), added(30523, '[ENC]'),
      ],
      normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
    };
    const dir = await tempFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson) });
    const tok = await BlipTokenizer.fromFolder(dir, { onWarning: () => {} });
    assert.equal(tok.decTokenId, 30522);
    assert.equal(tok.encTokenId, 30523);
    assert.equal(tok.blipTokensImplicit, false);
    for (const { id, text } of texts) {
      const enc = tok.encode(text, { truncation: false });
      assert.deepEqual(enc.inputIds, goldens.plain[id].input_ids, id);
      assert.deepEqual(enc.tokens, goldens.plain[id].tokens, id);
    }

    // Cased normalizer settings are honoured.
    tokenizerJson.normalizer.lowercase = false;
    const casedDir = await tempFolder({ 'tokenizer.json': JSON.stringify(tokenizerJson) });
    const cased = await BlipTokenizer.fromFolder(casedDir);
    assert.equal(cased.settings.doLowerCase, false);
    assert.deepEqual(cased.tokenize('Cat'), ['[UNK]']);
  });

  test('do_lower_case false in tokenizer_config.json keeps case', async () => {
    const cfg = JSON.parse(await readFile(path.join(tinyDir, 'tokenizer_config.json'), 'utf8'));
    cfg.do_lower_case = false;
    const dir = await tempFolder({
      'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
      'tokenizer_config.json': JSON.stringify(cfg),
    });
    const tok = await BlipTokenizer.fromFolder(dir);
    assert.deepEqual(tok.tokenize('cat Cat'), ['cat', '[UNK]']);
    // strip_accents null follows lower-casing: the accent is kept (and 'é' is not in the vocabulary)
    assert.deepEqual(tok.tokenize('é'), ['[UNK]']);
    cfg.strip_accents = true;
    const dir2 = await tempFolder({
      'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
      'tokenizer_config.json': JSON.stringify(cfg),
    });
    const tok2 = await BlipTokenizer.fromFolder(dir2);
    assert.deepEqual(tok2.tokenize('é'), ['e']);
    assert.deepEqual(tok2.tokenize('É'), ['[UNK]']);
  });

  test('added non-special tokens from added_tokens.json are matched in lower-cased text', async () => {
    const dir = await tempFolder({
      'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
      'tokenizer_config.json': JSON.stringify({ do_lower_case: true, model_max_length: 512 }),
      'added_tokens.json': JSON.stringify({ 'newword': 30522 }),
    });
    const tok = await BlipTokenizer.fromFolder(dir);
    assert.deepEqual(tok.encode('a NewWord here').inputIds, [101, 1037, 30522, 2182, 102]);
    // no [DEC] in these files: the BLIP ids follow the added token
    assert.equal(tok.decTokenId, 30523);
    assert.equal(tok.encTokenId, 30524);
  });
});

describe('checkpoint errors', () => {
  test('missing vocabulary', async () => {
    const dir = await tempFolder({ 'tokenizer_config.json': '{}' });
    await assert.rejects(BlipTokenizer.fromFolder(dir), (err: unknown) => {
      assert.ok(err instanceof CheckpointError);
      assert.equal(err.subject, path.join(dir, 'vocab.txt'));
      return true;
    });
  });

  test('malformed JSON names the file', async () => {
    for (const name of ['tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json', 'tokenizer.json']) {
      const dir = await tempFolder({
        'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
        [name]: '{"do_lower_case": tru',
      });
      await assert.rejects(BlipTokenizer.fromFolder(dir), (err: unknown) => {
        assert.ok(err instanceof CheckpointError, name);
        assert.equal(err.subject, path.join(dir, name));
        assert.match(err.message, /malformed JSON/);
        return true;
      });
    }
  });

  test('wrongly typed values', async () => {
    const dir = await tempFolder({
      'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
      'tokenizer_config.json': JSON.stringify({ do_lower_case: 'yes' }),
    });
    await assert.rejects(BlipTokenizer.fromFolder(dir), CheckpointError);
    const dir2 = await tempFolder({
      'vocab.txt': { copyFrom: path.join(tinyDir, 'vocab.txt') },
      'tokenizer_config.json': JSON.stringify({ added_tokens_decoder: { '5': 'oops' } }),
    });
    await assert.rejects(BlipTokenizer.fromFolder(dir2), CheckpointError);
  });

  test('missing folder', async () => {
    await assert.rejects(BlipTokenizer.fromFolder(path.join(tmpdir(), 'blip-no-such-folder-xyz')), CheckpointError);
  });
});
