/**
 * The files the tokenizer and the Hub cache read for the user go through src/io/files.ts: a
 * FIFO, a device or an oversized file where one is expected is refused with a one-line
 * FileError naming it, instead of a read that blocks or never ends.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { resolveCheckpoint } from '../src/checkpoint/hub.js';
import { FILE_LIMITS, FileError } from '../src/io/files.js';
import { BlipTokenizer } from '../src/preprocessing/tokenizer.js';

const tinyDir = fileURLToPath(new URL('./fixtures/models/tiny/', import.meta.url));
const root = await mkdtemp(path.join(tmpdir(), 'blip-file-reads-'));
after(() => rm(root, { recursive: true, force: true }));

let folders = 0;
async function folder(): Promise<string> {
  const dir = path.join(root, String(folders++));
  await mkdir(dir, { recursive: true });
  return dir;
}

/** Asserts `promise` rejects with a one-line FileError about `file` whose message matches `pattern`. */
async function rejectsWithFileError(promise: Promise<unknown>, file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof FileError, `expected a FileError, got ${String(err)}`);
    assert.equal(err.subject, file);
    assert.ok(!err.message.includes('\n'), `message spans lines: ${err.message}`);
    assert.ok(err.message.startsWith(`${file}: `), err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

// A read that blocked would hang the test, not fail it; the timeout turns that into a failure.
const BOUNDED = { timeout: 10_000 };

describe('tokenizer files', BOUNDED, () => {
  test('a FIFO as vocab.txt', async () => {
    const dir = await folder();
    execFileSync('mkfifo', [path.join(dir, 'vocab.txt')]);
    await rejectsWithFileError(BlipTokenizer.fromFolder(dir), path.join(dir, 'vocab.txt'), /a FIFO \(named pipe\), expected a tokenizer file/);
  });

  test('/dev/zero as tokenizer_config.json', async () => {
    const dir = await folder();
    await copyFile(path.join(tinyDir, 'vocab.txt'), path.join(dir, 'vocab.txt'));
    await symlink('/dev/zero', path.join(dir, 'tokenizer_config.json'));
    await rejectsWithFileError(BlipTokenizer.fromFolder(dir), path.join(dir, 'tokenizer_config.json'), /a character device/);
  });

  test('a special_tokens_map.json over the config size cap', async () => {
    const dir = await folder();
    await copyFile(path.join(tinyDir, 'vocab.txt'), path.join(dir, 'vocab.txt'));
    const stm = path.join(dir, 'special_tokens_map.json');
    await writeFile(stm, '');
    await truncate(stm, FILE_LIMITS.configJson + 1); // sparse: nothing is written
    await rejectsWithFileError(BlipTokenizer.fromFolder(dir), stm, /over the 16 MB limit for a tokenizer file/);
  });

  test('a missing optional file is still just absent', async () => {
    const dir = await folder();
    await copyFile(path.join(tinyDir, 'vocab.txt'), path.join(dir, 'vocab.txt'));
    const tok = await BlipTokenizer.fromFolder(dir);
    assert.deepEqual(tok.tokenize('two cats'), ['two', 'cats']);
  });
});

describe('Hub cache files', BOUNDED, () => {
  test('a FIFO as refs/main', async () => {
    const cacheDir = await folder();
    const refs = path.join(cacheDir, 'models--blip-test--tiny-itm', 'refs');
    await mkdir(refs, { recursive: true });
    execFileSync('mkfifo', [path.join(refs, 'main')]);
    await rejectsWithFileError(
      resolveCheckpoint('blip-test/tiny-itm', { cacheDir, offline: true, env: {}, onProgress: false }),
      path.join(refs, 'main'),
      /a FIFO \(named pipe\), expected a Hub cache ref/,
    );
  });

  test('a shard index over the index size cap', async () => {
    const dir = await folder();
    const index = path.join(dir, 'model.safetensors.index.json');
    await writeFile(index, '');
    await truncate(index, FILE_LIMITS.indexJson + 1);
    await rejectsWithFileError(resolveCheckpoint(dir, { env: {} }), index, /over the 64 MB limit for a shard index/);
  });
});
