import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readBlipConfig } from '../src/checkpoint/config.js';
import { readSafetensors } from '../src/checkpoint/safetensors.js';
import { retrievalTensorShapes } from '../bench/random-checkpoint.js';

// The benchmark's random large checkpoint is only meaningful if it has the real layout.
test('the benchmark checkpoint layout equals the real state dict layout of both fixture models', async () => {
  for (const name of ['tiny', 'tiny-384']) {
    const dir = `test/fixtures/models/${name}`;
    const expected = retrievalTensorShapes(await readBlipConfig(`${dir}/config.json`));
    const actual = (await readSafetensors(`${dir}/model.safetensors`)).tensors;
    assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
    for (const [k, info] of actual) assert.deepEqual(info.shape, expected.get(k), k);
  }
});
