import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_HEADER_BYTES, readSafetensors, readShardedSafetensors, readTensorData } from '../src/checkpoint/safetensors.js';
import { CheckpointError } from '../src/errors.js';
import { writeRawSafetensors } from './helpers/safetensors-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'blip-st-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const file = () => join(dir, `f${n++}.safetensors`);

async function rejects(path: string, pattern: RegExp): Promise<void> {
  await assert.rejects(readSafetensors(path), (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${String(e)}`);
    assert.ok(e.message.startsWith(path), `message should name the file: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('reads the fixture model: dtypes, shapes and absolute byte ranges', async () => {
  const st = await readSafetensors('test/fixtures/models/tiny/model.safetensors');
  assert.equal(st.tensors.size, 92);
  assert.equal(st.metadata.format, 'pt');
  const w = st.tensors.get('itm_head.weight')!;
  assert.equal(w.dtype, 'F32');
  assert.deepEqual(w.shape, [2, 32]);
  assert.equal(w.length, 2 * 32 * 4);
  assert.ok(w.offset >= st.dataStart);
  const data = (await readTensorData(w)) as Float32Array;
  assert.equal(data.length, 64);
});

test('header ranges map to the bytes written', async () => {
  const p = file();
  const data = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6]).buffer);
  writeRawSafetensors(p, { b: { dtype: 'F32', shape: [2], data_offsets: [16, 24] }, a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } }, data);
  const st = await readSafetensors(p);
  assert.deepEqual([...(await readTensorData(st.tensors.get('a')!))], [1, 2, 3, 4]);
  assert.deepEqual([...(await readTensorData(st.tensors.get('b')!))], [5, 6]);
});

test('file shorter than the 8-byte length prefix', async () => {
  const p = file();
  writeFileSync(p, Buffer.from([1, 2, 3]));
  await rejects(p, /too short/);
});

test('zero-byte file', async () => {
  const p = file();
  writeFileSync(p, Buffer.alloc(0));
  await rejects(p, /0 bytes, too short/);
});

test('header length beyond the sane bound, without allocating it', async () => {
  const p = file();
  writeRawSafetensors(p, {}, undefined, BigInt(MAX_HEADER_BYTES) + 1n);
  await rejects(p, /exceeds the 100000000-byte limit/);
  const q = file();
  writeRawSafetensors(q, {}, undefined, 0xffffffffffffffffn);
  await rejects(q, /exceeds/);
});

test('header length past the end of the file', async () => {
  const p = file();
  writeRawSafetensors(p, '{}', undefined, 1000n);
  await rejects(p, /runs past the end/);
});

test('header that is not JSON', async () => {
  const p = file();
  writeRawSafetensors(p, '{"a": {"dtype": ');
  await rejects(p, /not well-formed JSON/);
});

test('header JSON that is not an object', async () => {
  const p = file();
  writeRawSafetensors(p, '[1, 2]');
  await rejects(p, /must be an object/);
});

test('unknown dtype', async () => {
  const p = file();
  writeRawSafetensors(p, { a: { dtype: 'F8_E9', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1));
  await rejects(p, /tensor "a": unknown dtype "F8_E9"/);
});

test('shape times dtype size differs from the byte range', async () => {
  const p = file();
  writeRawSafetensors(p, { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
  await rejects(p, /needs 12 bytes but data_offsets span 8/);
});

test('bad shape values', async () => {
  const p = file();
  writeRawSafetensors(p, { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4));
  await rejects(p, /shape must be an array of non-negative integers/);
  const q = file();
  writeRawSafetensors(q, { a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, new Uint8Array(4));
  await rejects(q, /too large/);
});

test('range outside the data section', async () => {
  const p = file();
  writeRawSafetensors(p, { a: { dtype: 'U8', shape: [8], data_offsets: [4, 12] } }, new Uint8Array(8));
  await rejects(p, /run past the data section \(8 bytes\)/);
});

test('malformed data_offsets', async () => {
  const p = file();
  writeRawSafetensors(p, { a: { dtype: 'U8', shape: [0], data_offsets: [4, 2] } }, new Uint8Array(8));
  await rejects(p, /data_offsets must be \[begin, end\]/);
});

test('overlapping tensors', async () => {
  const p = file();
  writeRawSafetensors(p, {
    a: { dtype: 'U8', shape: [6], data_offsets: [0, 6] },
    b: { dtype: 'U8', shape: [4], data_offsets: [4, 8] },
  }, new Uint8Array(8));
  await rejects(p, /"a" and "b" overlap/);
});

test('non-string metadata', async () => {
  const p = file();
  writeRawSafetensors(p, { __metadata__: { format: 1 } });
  await rejects(p, /__metadata__.format must be a string/);
});

test('missing file names the path', async () => {
  await rejects(join(dir, 'nope.safetensors'), /file not found/);
});

test('sharded checkpoints merge their index', async () => {
  const shardDir = mkdtempSync(join(dir, 'shards-'));
  writeRawSafetensors(join(shardDir, 'm-1.safetensors'), { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(new Float32Array([7]).buffer));
  writeRawSafetensors(join(shardDir, 'm-2.safetensors'), { b: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(new Float32Array([8]).buffer));
  const index = join(shardDir, 'model.safetensors.index.json');
  writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: { a: 'm-1.safetensors', b: 'm-2.safetensors' } }));
  const merged = await readShardedSafetensors(index);
  assert.deepEqual([...(await readTensorData(merged.get('b')!))], [8]);
  writeFileSync(index, JSON.stringify({ weight_map: { a: '../../etc/passwd' } }));
  await assert.rejects(readShardedSafetensors(index), /plain file name in the same folder/);
  writeFileSync(index, JSON.stringify({ weight_map: { zz: 'm-1.safetensors' } }));
  await assert.rejects(readShardedSafetensors(index), /says it holds "zz"/);
});
