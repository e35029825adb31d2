import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readBlipConfig } from '../src/checkpoint/config.js';
import { openWeights } from '../src/checkpoint/weights.js';
import { buildBlipGraphs } from '../src/graph/precision.js';
import { FIXTURES } from './helpers/goldens.js';

/**
 * The fp16 and int8 graphs share the builder with fp32; this pins the fp32 graphs of the fixture
 * models byte for byte (sha256 of the encoded ONNX model, external weights by file name and offset),
 * so that precision work cannot change what fp32 computes unnoticed. A deliberate change to the
 * fp32 graphs updates these digests in the same commit, saying why.
 */
const FP32_GRAPHS: Record<string, string> = {
  'tiny fused vision': 'b279d69c2b9ffc8ed177db614cb6d071c6adccd772a302068cecc8b9d2ba45c2',
  'tiny fused text': 'fd7b3fe349ea3a634aeca4727b04c05e4002997c602b7c53382339fdff90e522',
  'tiny fused crossKV': 'c5e2d7c026efdbaea111e43e5d8bcaa80a27afb2bdb5fad515c6d7f456e4eb7b',
  'tiny matmul vision': '2b4af51b49199d877835c7639efaeb2db59f2f20ccc341785ce99f3d3317d963',
  'tiny matmul text': '011a8ed5b4d16d73ba6f604ee88e0e1fd6d9e16e8fe498a8e44b35db3cabc039',
  'tiny matmul crossKV': '69d8bd4818af1ab0a2fe97f6fa572f86250e152866b7704bf0da82ecf941fdab',
  'tiny-384 fused vision': '77aeb40c0ed4aa2fcfabfc4f6e359d26efcc0f6ddd972c9193bf0a2588af9747',
  'tiny-384 fused text': 'e037d47f9036c5a49734be702c5291878ce30fcf934760514f0a5b3e08384bbb',
  'tiny-384 fused crossKV': '5085fc123913e1acaaeb3e10e7435e42b872f59f90a8f40afc3de5b1e6529ae9',
  'tiny-384 matmul vision': '4d52ae849accc9f007998aee2c93217e18da337ae3932158953d468f3a5e088d',
  'tiny-384 matmul text': '59daa30d6f6fdc6a567ec69351a2544dec7a16988e06ff596b41680538b2be7c',
  'tiny-384 matmul crossKV': 'b0741a056fe750630d12c70a34340453e611f4b0015863de7b79ee557a844af0',
};

test('fp32 graphs of the fixture models are byte for byte the pinned ones (CPU FusedMatMul and GPU MatMul linears)', async () => {
  const got: Record<string, string> = {};
  for (const name of ['tiny', 'tiny-384']) {
    const dir = `${FIXTURES}/models/${name}`;
    const config = await readBlipConfig(`${dir}/config.json`);
    const weights = await openWeights(dir);
    for (const matmulLinears of [false, true]) {
      const { graphs } = await buildBlipGraphs(config, weights, 'fp32', { matmulLinears });
      for (const [k, g] of Object.entries(graphs)) got[`${name} ${matmulLinears ? 'matmul' : 'fused'} ${k}`] = createHash('sha256').update(g.bytes).digest('hex');
    }
  }
  assert.deepEqual(got, FP32_GRAPHS);
});
