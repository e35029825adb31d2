import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CheckpointError } from '../src/errors.js';
import { PyTuple, unpickle } from '../src/checkpoint/pickle.js';
import { readSafetensors, readTensorData } from '../src/checkpoint/safetensors.js';
import { readTorchBin } from '../src/checkpoint/torch-bin.js';
import { ZipArchive, crc32 } from '../src/checkpoint/zip.js';
import { PickleBuilder, buildZip, type ZipInputEntry, type ZipWriteOptions } from './helpers/zip-writer.js';

const TINY = fileURLToPath(new URL('./fixtures/models/tiny/', import.meta.url));
const FIXTURE_BIN = join(TINY, 'pytorch_model.bin');
const FIXTURE_ST = join(TINY, 'model.safetensors');

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'blip-torch-bin-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function writeTemp(bytes: Uint8Array, name = `case-${++counter}.bin`): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

/** Asserts `fn` rejects with a CheckpointError whose message names `path` and matches every pattern. */
async function rejectsWith(fn: () => Promise<unknown>, path: string, ...patterns: RegExp[]): Promise<CheckpointError> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CheckpointError, `expected a CheckpointError, got ${caught instanceof Error ? caught.stack : String(caught)}`);
  assert.ok(caught.message.includes(path), `message should name the file: ${caught.message}`);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

interface TensorSpec {
  name: string;
  storage?: string; // torch.XStorage class name
  key: string;
  numel: number; // storage elements
  offset?: number;
  size: number[];
  stride?: number[];
}

function contiguousStride(size: number[]): number[] {
  const out = new Array<number>(size.length);
  let s = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= size[i];
  }
  return out;
}

/** A data.pkl shaped like the one torch.save(state_dict) writes (OrderedDict + _rebuild_tensor_v2 + BINPERSID). */
function stateDictPickle(tensors: TensorSpec[], options: { metadata?: boolean } = {}): Buffer {
  const p = new PickleBuilder().proto(2).global('collections', 'OrderedDict').binput(0).emptyTuple().reduce().binput(1);
  p.mark();
  for (const t of tensors) {
    p.str(t.name)
      .global('torch._utils', '_rebuild_tensor_v2')
      .mark()
      .mark().str('storage').global('torch', t.storage ?? 'FloatStorage').str(t.key).str('cpu').int(t.numel).tuple()
      .binpersid()
      .int(t.offset ?? 0)
      .intTuple(t.size)
      .intTuple(t.stride ?? contiguousStride(t.size))
      .bool(false)
      .binget(0).emptyTuple().reduce() // backward_hooks = OrderedDict()
      .tuple()
      .reduce();
  }
  p.setitems();
  if (options.metadata) {
    // state_dict()._metadata, pickled by OrderedDict.__reduce__ as BUILD state {'_metadata': OrderedDict(...)}
    p.emptyDict().str('_metadata').binget(0).emptyTuple().reduce()
      .str('').emptyDict().str('version').int(1).setitem().setitem()
      .setitem().build();
  }
  return p.stop().toBuffer();
}

function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function archive(pkl: Uint8Array, records: Record<string, Uint8Array>, extra: Partial<Record<string, ZipInputEntry>> = {}, options?: ZipWriteOptions): Buffer {
  const entries: ZipInputEntry[] = [
    extra.pkl ?? { name: 'archive/data.pkl', data: pkl },
    ...Object.entries(records).map(([key, data]) => extra[key] ?? { name: `archive/data/${key}`, data }),
    { name: 'archive/version', data: Buffer.from('3\n') },
  ];
  return buildZip(entries, options);
}

describe('readTorchBin on the tiny fixture', () => {
  test('matches model.safetensors tensor for tensor: dtype, shape and bytes', async () => {
    const bin = await readTorchBin(FIXTURE_BIN);
    const st = await readSafetensors(FIXTURE_ST);
    assert.equal(bin.path, FIXTURE_BIN);
    assert.ok(st.tensors.size > 0);
    for (const [name, ref] of st.tensors) {
      const got = bin.tensors.get(name);
      assert.ok(got, `pytorch_model.bin lacks "${name}"`);
      assert.equal(got.name, name);
      assert.equal(got.file, FIXTURE_BIN);
      assert.equal(got.dtype, ref.dtype, name);
      assert.deepEqual(got.shape, ref.shape, name);
      assert.equal(got.length, ref.length, name);
      const a = await readTensorData(got);
      const b = await readTensorData(ref);
      assert.ok(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `bytes of "${name}" differ`);
    }
    // The only extra is the buffer transformers ignores; it is kept in the index.
    const extras = [...bin.tensors.keys()].filter((k) => !st.tensors.has(k));
    assert.deepEqual(extras, ['text_encoder.embeddings.position_ids']);
    const pos = bin.tensors.get('text_encoder.embeddings.position_ids')!;
    assert.equal(pos.dtype, 'I64');
    assert.deepEqual(pos.shape, [1, 512]);
    const ids = (await readTensorData(pos)) as BigInt64Array;
    assert.deepEqual([...ids], Array.from({ length: 512 }, (_, i) => BigInt(i)));
  });

  test('tensor ranges lie inside their stored records and do not overlap', async () => {
    const bin = await readTorchBin(FIXTURE_BIN);
    const zip = await ZipArchive.open(FIXTURE_BIN);
    try {
      const records = [...zip.entries.values()].filter((e) => e.name.startsWith('pytorch_model/data/'));
      for (const info of bin.tensors.values()) {
        const rec = records.find((r) => info.offset >= r.dataOffset && info.offset + info.length <= r.dataOffset + r.uncompressedSize);
        assert.ok(rec, `"${info.name}" is not inside a storage record`);
        assert.equal(rec.method, 0);
      }
    } finally {
      await zip.close();
    }
  });
});

describe('readTorchBin on hand-built archives', () => {
  test('views sharing a storage, storage offsets, size-1 strides, dtypes, ZIP64 and _metadata', async () => {
    const storage = f32([0, 1, 2, 3, 4, 5]);
    const longs = new Uint8Array(new BigInt64Array([7n, -8n]).buffer);
    const pkl = stateDictPickle([
      { name: 'whole', key: '0', numel: 6, size: [2, 3] },
      { name: 'tail', key: '0', numel: 6, offset: 2, size: [4] },
      { name: 'row', key: '0', numel: 6, offset: 3, size: [1, 3], stride: [99, 1] }, // size-1 dim: any stride
      { name: 'scalar', key: '0', numel: 6, offset: 5, size: [] },
      { name: 'empty', key: '0', numel: 6, size: [0, 3], stride: [5, 7] },
      { name: 'ids', key: 'longs', storage: 'LongStorage', numel: 2, size: [2] },
    ], { metadata: true });
    for (const zip64 of [false, true]) {
      const path = await writeTemp(archive(pkl, { 0: storage, longs }, {}, { zip64 }));
      const { tensors } = await readTorchBin(path);
      assert.deepEqual([...tensors.keys()], ['whole', 'tail', 'row', 'scalar', 'empty', 'ids']);
      assert.deepEqual([...(await readTensorData(tensors.get('whole')!))], [0, 1, 2, 3, 4, 5]);
      assert.deepEqual([...(await readTensorData(tensors.get('tail')!))], [2, 3, 4, 5]);
      assert.deepEqual([...(await readTensorData(tensors.get('row')!))], [3, 4, 5]);
      assert.deepEqual(tensors.get('row')!.shape, [1, 3]);
      assert.deepEqual([...(await readTensorData(tensors.get('scalar')!))], [5]);
      assert.deepEqual(tensors.get('scalar')!.shape, []);
      assert.equal(tensors.get('empty')!.length, 0);
      assert.equal(tensors.get('ids')!.dtype, 'I64');
      assert.deepEqual([...(await readTensorData(tensors.get('ids')!))], [7n, -8n]);
    }
  });

  test('a deflated data.pkl is read (only storages must be stored)', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 2, size: [2] }]);
    const path = await writeTemp(archive(pkl, { 0: f32([1, 2]) }, { pkl: { name: 'archive/data.pkl', data: pkl, method: 8 } }));
    const { tensors } = await readTorchBin(path);
    assert.deepEqual([...(await readTensorData(tensors.get('w')!))], [1, 2]);
  });

  test('the archive prefix is taken from the data.pkl folder', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 1, size: [1] }]);
    const path = await writeTemp(buildZip([
      { name: 'my_model/data.pkl', data: pkl },
      { name: 'my_model/data/0', data: f32([42]) },
    ]));
    const { tensors } = await readTorchBin(path);
    assert.deepEqual([...(await readTensorData(tensors.get('w')!))], [42]);
  });
});

describe('refuses pickles that would run code', () => {
  const marker = () => join(dir, `pwned-${++counter}`);

  async function refusedGlobal(pickle: Buffer, global: string, markerPath: string): Promise<void> {
    const path = await writeTemp(archive(pickle, {}));
    await rejectsWith(() => readTorchBin(path), path, new RegExp(`refuses to load global "${global.replace(/\./g, '\\.')}"`), /only PyTorch tensor state dicts/);
    assert.equal(existsSync(markerPath), false, 'the payload must not have run');
  }

  test('GLOBAL os system + REDUCE', async () => {
    const m = marker();
    const p = new PickleBuilder().proto(2).global('os', 'system').str(`touch ${m}`).tuple1().reduce().stop();
    await refusedGlobal(p.toBuffer(), 'os.system', m);
  });

  test('GLOBAL builtins eval, posix system, subprocess Popen', async () => {
    for (const [mod, name] of [['builtins', 'eval'], ['__builtin__', 'eval'], ['posix', 'system'], ['subprocess', 'Popen'], ['builtins', 'exec']]) {
      const m = marker();
      const p = new PickleBuilder().proto(2).global(mod, name).str(`open(${JSON.stringify(m)}, "w")`).tuple1().reduce().stop();
      await refusedGlobal(p.toBuffer(), `${mod}.${name}`, m);
    }
  });

  test('STACK_GLOBAL variants (protocol 4 style)', async () => {
    for (const [mod, name] of [['os', 'system'], ['builtins', 'eval'], ['builtins', 'getattr']]) {
      const m = marker();
      const p = new PickleBuilder().proto(4).stackGlobal(mod, name).memoize().str(`touch ${m}`).tuple1().reduce().stop();
      await refusedGlobal(p.toBuffer(), `${mod}.${name}`, m);
    }
  });

  test('torch globals outside the allowlist, including _load_from_bytes and dotted-name tricks', async () => {
    for (const [mod, name] of [
      ['torch.storage', '_load_from_bytes'],
      ['torch', 'load'],
      ['torch._utils', '_rebuild_parameter'],
      ['torch', '_utils._rebuild_tensor_v2'], // resolves by getattr in Python ≥ 4 protocols; not on our list
      ['collections', 'OrderedDict.fromkeys'],
    ]) {
      const p = new PickleBuilder().proto(2).global(mod, name).emptyTuple().reduce().stop();
      await refusedGlobal(p.toBuffer(), `${mod}.${name}`, join(dir, 'never'));
    }
  });

  test('a malicious global hidden inside an otherwise valid state dict', async () => {
    const m = marker();
    // backward_hooks = {0: os.system("touch ...")}
    const p = new PickleBuilder().proto(2).global('collections', 'OrderedDict').binput(0).emptyTuple().reduce()
      .str('w').global('torch._utils', '_rebuild_tensor_v2')
      .mark()
      .mark().str('storage').global('torch', 'FloatStorage').str('0').str('cpu').int(1).tuple().binpersid()
      .int(0).intTuple([1]).intTuple([1]).bool(false)
      .emptyDict().int(0).global('os', 'system').str(`touch ${m}`).tuple1().reduce().setitem()
      .tuple().reduce().setitem().stop();
    const path = await writeTemp(archive(p.toBuffer(), { 0: f32([1]) }));
    await rejectsWith(() => readTorchBin(path), path, /refuses to load global "os\.system"/);
    assert.equal(existsSync(m), false);
  });

  test('allowlisted globals cannot be called in unexpected ways', async () => {
    const calls: Array<[string, Buffer]> = [
      ['torch.FloatStorage cannot be called', new PickleBuilder().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop().toBuffer()],
      ['OrderedDict is only supported with no arguments',
        new PickleBuilder().proto(2).global('collections', 'OrderedDict').emptyList().tuple1().reduce().stop().toBuffer()],
      ['_rebuild_tensor_v2 takes 6 or 7 arguments',
        new PickleBuilder().proto(2).global('torch._utils', '_rebuild_tensor_v2').emptyTuple().reduce().stop().toBuffer()],
      ['not a torch.\\*Storage class',
        new PickleBuilder().proto(2).mark().str('storage').global('collections', 'OrderedDict').str('0').str('cpu').int(1).tuple().binpersid().stop().toBuffer()],
      ['BUILD is only supported',
        new PickleBuilder().proto(2).emptyList().emptyDict().build().stop().toBuffer()],
    ];
    for (const [pattern, pickle] of calls) {
      const path = await writeTemp(archive(pickle, {}));
      await rejectsWith(() => readTorchBin(path), path, new RegExp(pattern));
    }
  });
});

describe('clear errors for unsupported or malformed checkpoints', () => {
  test('a compressed storage record', async () => {
    const pkl = stateDictPickle([{ name: 'encoder.weight', key: '0', numel: 4, size: [4] }]);
    const data = f32([1, 2, 3, 4]);
    const path = await writeTemp(archive(pkl, { 0: data }, { 0: { name: 'archive/data/0', data, method: 8 } }));
    await rejectsWith(() => readTorchBin(path), path, /tensor "encoder\.weight"/, /"archive\/data\/0" is compressed/);
  });

  test('non-contiguous strides', async () => {
    const pkl = stateDictPickle([{ name: 'proj.weight', key: '0', numel: 6, size: [2, 3], stride: [1, 2] }]);
    const path = await writeTemp(archive(pkl, { 0: f32([0, 1, 2, 3, 4, 5]) }));
    await rejectsWith(() => readTorchBin(path), path, /tensor "proj\.weight" is not contiguous/, /stride \[1,2\]/);
  });

  test('a tensor running past its storage, a storage larger than its record, a missing record', async () => {
    const cases: Array<[TensorSpec, Record<string, Uint8Array>, RegExp]> = [
      [{ name: 'a', key: '0', numel: 4, offset: 2, size: [3] }, { 0: f32([1, 2, 3, 4]) }, /run past its storage/],
      [{ name: 'b', key: '0', numel: 8, size: [8] }, { 0: f32([1, 2, 3, 4]) }, /claims 8 F32 elements but its record holds only 16 bytes/],
      [{ name: 'c', key: '7', numel: 1, size: [1] }, { 0: f32([1]) }, /storage record "archive\/data\/7" is missing/],
    ];
    for (const [spec, records, pattern] of cases) {
      const path = await writeTemp(archive(stateDictPickle([spec]), records));
      await rejectsWith(() => readTorchBin(path), path, new RegExp(`tensor "${spec.name}"`), pattern);
    }
  });

  test('not a zip, an empty file, a legacy torch.save file', async () => {
    const text = await writeTemp(Buffer.from('hello, this is not a checkpoint\n'.repeat(10)));
    await rejectsWith(() => readTorchBin(text), text, /not a ZIP archive/);
    const empty = await writeTemp(new Uint8Array(0));
    await rejectsWith(() => readTorchBin(empty), empty, /not a ZIP archive/);
    const legacy = await writeTemp(Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, ...new Array(40).fill(0)]));
    await rejectsWith(() => readTorchBin(legacy), legacy, /legacy \(pre-1\.6, non-ZIP\) torch\.save/);
    const missing = join(dir, 'does-not-exist.bin');
    await rejectsWith(() => readTorchBin(missing), missing, /file not found/);
  });

  test('a truncated fixture', async () => {
    const whole = await readFile(FIXTURE_BIN);
    for (const keep of [whole.length - 1, whole.length - 30, Math.floor(whole.length / 2), 100]) {
      const path = await writeTemp(whole.subarray(0, keep));
      await rejectsWith(() => readTorchBin(path), path, /truncated|no end of central directory/);
    }
  });

  test('corrupt directory fields are caught against the file size', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 1, size: [1] }]);
    const good = archive(pkl, { 0: f32([1]) });
    const eocd = good.length - 22;

    const badCdOffset = Buffer.from(good);
    badCdOffset.writeUInt32LE(0x7ffffff0, eocd + 16);
    let path = await writeTemp(badCdOffset);
    await rejectsWith(() => readTorchBin(path), path, /central directory/);

    const cdOffset = good.readUInt32LE(eocd + 16);
    const badLocal = Buffer.from(good);
    badLocal.writeUInt32LE(0x7fff0000, cdOffset + 42); // first entry's local header offset
    path = await writeTemp(badLocal);
    await rejectsWith(() => readTorchBin(path), path, /local header offset \d+ is out of range/);

    const badSig = Buffer.from(good);
    badSig.writeUInt32LE(0xdeadbeef, 0); // first local header
    path = await writeTemp(badSig);
    await rejectsWith(() => readTorchBin(path), path, /no local file header/);

    const badCrc = Buffer.from(good);
    badCrc.writeUInt32LE((badCrc.readUInt32LE(cdOffset + 16) ^ 1) >>> 0, cdOffset + 16);
    path = await writeTemp(badCrc);
    await rejectsWith(() => readTorchBin(path), path, /CRC-32/);
  });

  test('no data.pkl, or a pickle that is not a state dict of tensors', async () => {
    let path = await writeTemp(buildZip([{ name: 'archive/version', data: Buffer.from('3\n') }]));
    await rejectsWith(() => readTorchBin(path), path, /no "<name>\/data\.pkl" record/);

    path = await writeTemp(archive(new PickleBuilder().proto(2).emptyList().stop().toBuffer(), {}));
    await rejectsWith(() => readTorchBin(path), path, /not a state dict/);

    path = await writeTemp(archive(new PickleBuilder().proto(2).emptyDict().str('step').int(3).setitem().stop().toBuffer(), {}));
    await rejectsWith(() => readTorchBin(path), path, /state dict entry "step" is int 3, not a tensor/);
  });

  test('big-endian checkpoints (byteorder record)', async () => {
    const pkl = stateDictPickle([{ name: 'w', key: '0', numel: 1, size: [1] }]);
    const path = await writeTemp(buildZip([
      { name: 'archive/data.pkl', data: pkl },
      { name: 'archive/byteorder', data: Buffer.from('big') },
      { name: 'archive/data/0', data: f32([1]) },
    ]));
    await rejectsWith(() => readTorchBin(path), path, /"big"-endian/);
  });
});

describe('restricted unpickler', () => {
  const opts = { file: '/x/model.bin', record: 'archive/data.pkl' };
  const fails = (bytes: Buffer, ...patterns: RegExp[]) => {
    assert.throws(() => unpickle(bytes, opts), (e: unknown) => {
      assert.ok(e instanceof CheckpointError);
      assert.ok(e.message.includes('/x/model.bin'));
      for (const p of patterns) assert.match(e.message, p);
      return true;
    });
  };

  test('unknown and unsupported opcodes name the byte and the position', async () => {
    fails(new PickleBuilder().proto(2).raw(0xff).stop().toBuffer(), /opcode 0xff \(not a pickle opcode\)/, /at byte 2/);
    fails(new PickleBuilder().proto(2).global('collections', 'OrderedDict').emptyTuple().raw(0x81).stop().toBuffer(), /opcode 0x81 \(NEWOBJ\)/, /at byte 28/);
    fails(new PickleBuilder().proto(2).raw(0x69).toBuffer(), /0x69 \(INST\)/);
    fails(new PickleBuilder().proto(2).raw(0x82, 1).toBuffer(), /0x82 \(EXT1\)/);
    fails(new PickleBuilder().proto(2).str('id').raw(0x50).toBuffer(), /0x50 \(PERSID\)/);
    // And through the .bin reader, naming the file.
    const path = await writeTemp(archive(new PickleBuilder().proto(2).raw(0x6f).stop().toBuffer(), {}));
    await rejectsWith(() => readTorchBin(path), path, /unsupported pickle opcode 0x6f \(OBJ\)/, /archive\/data\.pkl/);
  });

  test('truncated or inconsistent pickles', () => {
    fails(new PickleBuilder().proto(2).emptyDict().toBuffer(), /without a STOP/);
    const long = Buffer.from([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x61]); // BINUNICODE claiming 2 GiB
    fails(long, /pickle ends inside BINUNICODE string/);
    fails(new PickleBuilder().proto(2).binget(5).stop().toBuffer(), /memo entry 5 is read before it is written/);
    fails(new PickleBuilder().proto(2).tuple().stop().toBuffer(), /TUPLE without a MARK/);
    fails(new PickleBuilder().proto(2).mark().tuple1().stop().toBuffer(), /stack is empty/);
    fails(new PickleBuilder().proto(2).emptyDict().emptyList().int(1).setitem().stop().toBuffer(), /unsupported dict key a list/);
    const deep = new PickleBuilder().proto(2);
    for (let i = 0; i < 300; i++) deep.mark();
    fails(deep.toBuffer(), /MARK nesting deeper than 256/);
  });

  test('decodes the values a state dict uses', () => {
    const p = new PickleBuilder().proto(2).mark()
      .int(255).int(65535).int(-5).int(2 ** 40).none().bool(true).shortStr('é').str('x')
      .emptyList().int(1).append().mark().int(2).int(3).appends()
      .raw(0x8a, 0) // LONG1 0
      .raw(0x8a, 2, 0x00, 0x80) // LONG1 -32768
      .tuple().longBinput(70000).longBinget(70000).tuple2().stop();
    const v = unpickle(p.toBuffer(), opts);
    assert.ok(v instanceof PyTuple && v.items.length === 2);
    const [a, b] = v.items;
    assert.equal(a, b, 'memo hands back the same object');
    assert.ok(a instanceof PyTuple);
    assert.deepEqual(a.items, [255, 65535, -5, 2 ** 40, null, true, 'é', 'x', [1, 2, 3], 0, -32768]);
  });

  test('crc32 matches the standard check value', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  });
});
