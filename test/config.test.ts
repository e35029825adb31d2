import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseBlipConfig, readBlipConfig, visionTokens } from '../src/checkpoint/config.js';
import { CheckpointError } from '../src/errors.js';

const REF = 'test/fixtures/reference-configs';

test('the large checkpoints parse with the real architecture', async () => {
  for (const name of ['blip-itm-large-coco', 'blip-itm-large-flickr']) {
    const c = await readBlipConfig(`${REF}/${name}.config.json`);
    assert.deepEqual(
      [c.vision_config.hidden_size, c.vision_config.num_hidden_layers, c.vision_config.num_attention_heads, c.vision_config.image_size, c.vision_config.patch_size, c.vision_config.intermediate_size, c.vision_config.layer_norm_eps],
      [1024, 24, 16, 384, 16, 4096, 1e-5],
    );
    assert.deepEqual(
      [c.text_config.hidden_size, c.text_config.num_hidden_layers, c.text_config.num_attention_heads, c.text_config.vocab_size, c.text_config.encoder_hidden_size, c.text_config.layer_norm_eps],
      [768, 12, 12, 30524, 1024, 1e-12],
    );
    assert.equal(c.image_text_hidden_size, 256);
    assert.equal(visionTokens(c.vision_config), 577);
  }
});

test('the base checkpoints parse; a null encoder_hidden_size takes the default 768', async () => {
  for (const name of ['blip-itm-base-coco', 'blip-itm-base-flickr']) {
    const c = await readBlipConfig(`${REF}/${name}.config.json`);
    assert.deepEqual([c.vision_config.hidden_size, c.vision_config.num_hidden_layers, c.vision_config.num_attention_heads], [768, 12, 12]);
    assert.equal(c.text_config.encoder_hidden_size, 768);
    assert.equal(c.image_text_hidden_size, 256);
  }
});

test('absent fields take transformers defaults', () => {
  const c = parseBlipConfig({ model_type: 'blip', architectures: ['BlipForImageTextRetrieval'], text_config: {}, vision_config: {} });
  assert.equal(c.text_config.num_attention_heads, 8);
  assert.equal(c.text_config.hidden_act, 'gelu');
  assert.equal(c.vision_config.layer_norm_eps, 1e-5);
  assert.equal(c.image_text_hidden_size, 256);
});

test('the fixture configs parse', async () => {
  const tiny = await readBlipConfig('test/fixtures/models/tiny/config.json');
  assert.equal(visionTokens(tiny.vision_config), 17);
  const t384 = await readBlipConfig('test/fixtures/models/tiny-384/config.json');
  assert.equal(visionTokens(t384.vision_config), 577);
});

test('other architectures are refused by name', () => {
  const base = JSON.parse(readFileSync(`${REF}/blip-itm-base-coco.config.json`, 'utf8'));
  assert.throws(() => parseBlipConfig({ ...base, architectures: ['BlipForConditionalGeneration'] }, 'x/config.json'), (e: unknown) => {
    assert.ok(e instanceof CheckpointError);
    assert.match(e.message, /^x\/config.json: architecture BlipForConditionalGeneration is not supported/);
    return true;
  });
  assert.throws(() => parseBlipConfig({ model_type: 'clip' }), /model_type "clip" is not supported/);
});

test('invalid values name the field', () => {
  assert.throws(() => parseBlipConfig({ model_type: 'blip', vision_config: { hidden_size: -3 } }), /vision_config.hidden_size/);
  assert.throws(() => parseBlipConfig({ model_type: 'blip', text_config: { hidden_act: 'swish' } }), /text_config.hidden_act/);
  assert.throws(() => parseBlipConfig({ model_type: 'blip', vision_config: { hidden_size: 100, num_attention_heads: 12 } }), /not divisible/);
  assert.throws(() => parseBlipConfig({ model_type: 'blip', vision_config: { hidden_size: 1024, num_attention_heads: 16 } }), /encoder_hidden_size 768 must equal vision_config.hidden_size 1024/);
  assert.throws(() => parseBlipConfig([1]), /expected a JSON object/);
});

test('unreadable or malformed config files name the file', async () => {
  await assert.rejects(readBlipConfig('nope/config.json'), /^FileError: nope\/config.json: file not found/);
  await assert.rejects(readBlipConfig('test/fixtures/models/tiny/vocab.txt'), /vocab.txt: not valid JSON/);
});
