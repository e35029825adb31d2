import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlipForImageTextRetrieval, type FromPretrainedOptions } from '../src/model/blip-itm.js';
import { modelCacheKey } from '../src/retrieval/encoding-cache.js';
import { FIXTURES } from './helpers/goldens.js';

const weightsCacheDir = mkdtempSync(join(tmpdir(), 'blip-cache-key-'));
after(() => rmSync(weightsCacheDir, { recursive: true, force: true }));

async function keyOf(options: FromPretrainedOptions): Promise<string> {
  const model = await BlipForImageTextRetrieval.fromPretrained(`${FIXTURES}/models/tiny`, { weightsCacheDir, ...options });
  try {
    return await modelCacheKey(model);
  } finally {
    await model.dispose();
  }
}

// The eval cache holds features computed by the graphs: fp16 on CPU (float32 arithmetic, float32
// LayerNorm) and fp16 end to end (the GPU graphs) give different numbers, so they must not share one.
test('the eval cache key tells the precisions and their graph kinds apart, and is stable across loads', async () => {
  const fp32 = await keyOf({});
  const fp16 = await keyOf({ dtype: 'fp16' });
  const fp16Half = await keyOf({ dtype: 'fp16', halfActivations: true });
  const int8 = await keyOf({ dtype: 'int8' });
  assert.equal(new Set([fp32, fp16, fp16Half, int8]).size, 4, 'four different keys');
  assert.equal(await keyOf({ dtype: 'fp16' }), fp16, 'the same load twice gives the same key');
  assert.equal(await keyOf({}), fp32);
});
