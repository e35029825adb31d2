import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readBlipConfig } from '../src/checkpoint/config.js';
import { openWeights } from '../src/checkpoint/weights.js';
import { BlipError } from '../src/errors.js';
import { BlipImageProcessor } from '../src/preprocessing/image-processor.js';
import { decodeImage } from '../src/preprocessing/image-decode.js';
import { BlipProcessor } from '../src/preprocessing/processor.js';
import { collectImages } from '../src/retrieval/collect-images.js';
import { EncodingCache } from '../src/retrieval/encoding-cache.js';
import { karpathySplit, readKarpathySplit, splitImagePaths } from '../src/retrieval/evaluate.js';
import { fingerprintWeights } from '../src/retrieval/model-identity.js';
import { assertCleanError, cli, IMAGE, TINY, tempDir, tinyCopy } from './helpers/bad-input.js';

/**
 * Bad files, class by class (issue #9): FIFOs and other non-regular files, endless files
 * (/dev/zero), folders where files belong, paths escaping their root, control characters in names.
 * Library reads are checked in-process (fast); the CLI runs check exit code, one stderr line, time
 * and memory.
 */

let dir: string;
let fifo: string;

before(() => {
  dir = tempDir();
  fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Rejects quickly with a one-line BlipError naming `subject` and matching `problem`. */
async function refuses(p: Promise<unknown>, subject: string, problem: RegExp): Promise<void> {
  const t0 = Date.now();
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BlipError, `expected a BlipError, got ${String(e)}`);
    assert.ok(e.message.includes(subject), `${e.message} names ${subject}`);
    assert.match(e.message, problem);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
  assert.ok(Date.now() - t0 < 5000, 'refused promptly (no blocking read)');
}

describe('every reader refuses FIFOs and devices without blocking', () => {
  test('config.json, preprocessor_config.json, images, annotations, list files, weights fingerprint', async () => {
    await refuses(readBlipConfig(fifo), fifo, /FIFO/);
    await refuses(BlipImageProcessor.fromFile(fifo), fifo, /FIFO/);
    await refuses(decodeImage(fifo), fifo, /FIFO/);
    await refuses(readKarpathySplit(fifo), fifo, /FIFO/);
    await refuses(collectImages(fifo), fifo, /FIFO/);
    await refuses(fingerprintWeights([fifo]), fifo, /FIFO/);
    await refuses(decodeImage('/dev/zero'), '/dev/zero', /character device/);
    await refuses(readKarpathySplit('/dev/zero'), '/dev/zero', /character device/);
  });

  test('weights and tokenizer files that are FIFOs, devices or folders', async () => {
    const asFifo = tinyCopy(dir, 'weights-fifo', { 'model.safetensors': null });
    execFileSync('mkfifo', [join(asFifo, 'model.safetensors')]);
    await refuses(openWeights(asFifo), 'model.safetensors', /FIFO/);
    const asFolder = tinyCopy(dir, 'weights-folder', { 'model.safetensors': null });
    mkdirSync(join(asFolder, 'model.safetensors'));
    await refuses(openWeights(asFolder), 'model.safetensors', /is a folder|a folder, expected/);
    const zeroLink = tinyCopy(dir, 'weights-zero', { 'model.safetensors': null });
    symlinkSync('/dev/zero', join(zeroLink, 'model.safetensors'));
    await refuses(openWeights(zeroLink), 'model.safetensors', /character device/);
    const vocabFifo = tinyCopy(dir, 'vocab-fifo', { 'vocab.txt': null });
    execFileSync('mkfifo', [join(vocabFifo, 'vocab.txt')]);
    await refuses(BlipProcessor.fromFolder(vocabFifo), 'vocab.txt', /FIFO/);
    const configZero = tinyCopy(dir, 'tokcfg-zero', { 'tokenizer_config.json': null });
    symlinkSync('/dev/zero', join(configZero, 'tokenizer_config.json'));
    await refuses(BlipProcessor.fromFolder(configZero), 'tokenizer_config.json', /character device/);
  });

  test('an eval-cache entry that is a FIFO counts as damaged, not as a read that never ends', async () => {
    const cache = new EncodingCache(join(dir, 'cache'), 'k');
    await cache.init({});
    const key = 'a'.repeat(64);
    mkdirSync(join(dir, 'cache', 'k', 'text'), { recursive: true });
    execFileSync('mkfifo', [cache.path('text', key)]);
    assert.equal(await cache.get('text', key), undefined);
    assert.equal(cache.rejected, 1);
    const folderKey = 'b'.repeat(64);
    mkdirSync(cache.path('text', folderKey));
    assert.equal(await cache.get('text', folderKey), undefined);
    assert.equal(cache.rejected, 2);
    assert.equal(existsSync(cache.path('text', folderKey)), false, 'the planted folder is removed so the entry can be written');
  });

  test('JSON errors name the file and the byte, without echoing its content', async () => {
    const f = join(dir, 'bad.json');
    writeFileSync(f, '{"model_type": "blip", SECRET-BYTES }');
    await refuses(readBlipConfig(f), f, /not valid JSON \(syntax error at byte \d+\)/);
    await assert.rejects(readBlipConfig(f), (e: Error) => !e.message.includes('SECRET'));
  });
});

describe('eval image paths stay inside --images', () => {
  test('.., absolute paths and links out are refused, paths inside are kept', async () => {
    const root = join(dir, 'root');
    mkdirSync(join(root, 'sub'), { recursive: true });
    symlinkSync('/etc', join(root, 'out'));
    const split = (image: string) => karpathySplit([{ image, caption: 'a' }], 'ann.json');
    await refuses(splitImagePaths(split('../../../etc/passwd'), root), '../../../etc/passwd', /escapes the root folder/);
    await refuses(splitImagePaths(split('/etc/passwd'), root), '/etc/passwd', /escapes the root folder/);
    await refuses(splitImagePaths(split('out/passwd'), root), 'out/passwd', /links outside the root folder/);
    assert.deepEqual(await splitImagePaths(split('sub/../sub/x.jpg'), root), [join(resolve(root), 'sub/x.jpg')]);
  });

  test('CLI: eval with an escaping path exits 1 with one line, before loading the model', () => {
    const ann = join(dir, 'escape.json');
    writeFileSync(ann, JSON.stringify([{ image: '../../../../../etc/passwd', caption: ['x'] }]));
    assertCleanError(cli(['eval', '--model', TINY, '--annotations', ann, '--images', 'test/fixtures/images', '--no-cache']), 1,
      /annotation entry 0: .*etc\/passwd: image path escapes the root folder/);
  });
});

describe('CLI: non-regular and endless inputs give one line and exit 1', () => {
  test('--image FIFO and /dev/zero', () => {
    assertCleanError(cli(['score', '--model', TINY, '--image', fifo, '--text', 'x']), 1, /fifo: a FIFO \(named pipe\), expected an image file/);
    assertCleanError(cli(['score', '--model', TINY, '--image', '/dev/zero', '--text', 'x']), 1, /\/dev\/zero: a character device/, { mb: 600 });
  });

  test('rank --texts FIFO and /dev/zero, eval --annotations /dev/zero', () => {
    assertCleanError(cli(['rank', '--model', TINY, '--image', IMAGE, '--texts', fifo]), 1, /fifo: a FIFO \(named pipe\), expected a captions file/);
    assertCleanError(cli(['rank', '--model', TINY, '--image', IMAGE, '--texts', '/dev/zero']), 1, /\/dev\/zero: a character device/, { mb: 600 });
    assertCleanError(cli(['eval', '--model', TINY, '--annotations', '/dev/zero', '--images', dir]), 1, /\/dev\/zero: a character device/, { mb: 600 });
  });

  test('weights that are a FIFO or a folder (was: "internal error: EISDIR")', () => {
    const asFifo = tinyCopy(dir, 'cli-weights-fifo', { 'model.safetensors': null });
    execFileSync('mkfifo', [join(asFifo, 'model.safetensors')]);
    assertCleanError(cli(['score', '--model', asFifo, '--image', IMAGE, '--text', 'x']), 1, /model\.safetensors: a FIFO/);
    const asFolder = tinyCopy(dir, 'cli-weights-folder', { 'model.safetensors': null });
    mkdirSync(join(asFolder, 'model.safetensors'));
    assertCleanError(cli(['score', '--model', asFolder, '--image', IMAGE, '--text', 'x']), 1, /model\.safetensors: a folder, expected a safetensors file/);
  });

  test('a newline in a file name stays on one line', () => {
    assertCleanError(cli(['score', '--model', TINY, '--image', 'holiday\nphoto.jpg', '--text', 'x']), 1, /holiday\\nphoto\.jpg.*image file not found/);
  });
});
