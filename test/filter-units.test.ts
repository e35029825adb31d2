import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FilterProgress } from '../src/filter/progress.js';
import { parseQueueUrl, queueNameFor } from '../src/filter/queue.js';
import { splitMemberName } from '../src/filter/webdataset-reader.js';
import { UsageError } from '../src/errors.js';

test('progress line: bar, pairs/s, ETA, kept fraction and errors', () => {
  const p = new FilterProgress({ threshold: 0.5, minCosine: null }, 100);
  p.add([
    { ok: true, itmLogits: [0, 1], itmProbability: 0.73, cosine: 0.1 },
    { ok: true, itmLogits: [1, 0], itmProbability: 0.27, cosine: 0.1 },
    { ok: false, error: 'empty caption' },
    { ok: true, itmLogits: [0, 2], itmProbability: 0.88, cosine: 0.1 },
  ]);
  assert.deepEqual(p.counts, { pairs: 4, kept: 2, errors: 1 });
  const line = p.line(10);
  assert.match(line, /^filtering {2}\[-{10}\] {2}4\/100 pairs {2}[\d.]+ pairs\/s {2}ETA \d+:\d\d {2}kept 50\.0% {2}1 error$/);
  assert.match(new FilterProgress({ threshold: 0.5, minCosine: null }, null).line(), /^filtering {2}0 pairs$/);
  const strict = new FilterProgress({ threshold: 0.5, minCosine: 0.2 }, null);
  strict.add([{ ok: true, itmLogits: [0, 1], itmProbability: 0.73, cosine: 0.1 }]);
  assert.equal(strict.counts.kept, 0, '--min-cosine also applies');
});

test('queue URLs and names', () => {
  assert.deepEqual(parseQueueUrl('redis://127.0.0.1:6390/2'), { url: 'redis://127.0.0.1:6390/2', host: '127.0.0.1', port: 6390, db: 2 });
  assert.equal(parseQueueUrl('redis://host').port, 6379);
  for (const bad of ['127.0.0.1:6379', 'http://h:1', 'redis://h:1/x', 'redis:///0']) assert.throws(() => parseQueueUrl(bad), UsageError, bad);
  assert.equal(queueNameFor('/data/out'), queueNameFor('/data/out/'));
  assert.notEqual(queueNameFor('/data/out'), queueNameFor('/data/out2'));
  assert.match(queueNameFor('/data/out'), /^blip-itm-filter-[0-9a-f]{16}$/);
});

test('WebDataset member names split as webdataset does: key up to the first dot of the base name', () => {
  assert.deepEqual(splitMemberName('a/b/000123.jpg'), { key: 'a/b/000123', ext: 'jpg' });
  assert.deepEqual(splitMemberName('x.seg.PNG'), { key: 'x', ext: 'seg.png' });
  assert.deepEqual(splitMemberName('dir.v2/000.txt'), { key: 'dir.v2/000', ext: 'txt' });
  assert.equal(splitMemberName('README'), undefined);
  assert.equal(splitMemberName('.hidden'), undefined);
});

test('a run made in another precision is another model: refused, not resumed', async () => {
  const { incompatibility, newManifest, sameModel } = await import('../src/filter/manifest.js');
  const fp32 = { model: 'm', revision: null, commit: null, weightsFile: 'model.safetensors', fingerprint: 'sampled-sha256-v1:abc', dtype: 'fp32' as const };
  const int8 = { ...fp32, dtype: 'int8' as const };
  assert.equal(sameModel(fp32, { ...fp32, dtype: undefined }), true, 'manifests from before dtypes are fp32');
  assert.equal(sameModel(fp32, int8), false);
  const options = {} as Parameters<typeof newManifest>[1];
  const existing = newManifest(fp32, options, [], [], 0);
  assert.equal(incompatibility(existing, fp32, options, []), undefined);
  assert.match(incompatibility(existing, int8, options, []) ?? '', /another model \(m, .*abc; now m, .*abc, int8\)/);
});
