import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileError, readJsonFile, readRegularFile, readTextFile, resolveInside, statRegularFile } from '../src/io/files.js';

const dir = mkdtempSync(join(tmpdir(), 'blip-files-'));
const fifo = join(dir, 'fifo');
execFileSync('mkfifo', [fifo]);
writeFileSync(join(dir, 'small.txt'), 'hello');
writeFileSync(join(dir, 'bad.json'), '{"a": 1,, "secret-bytes"}');
mkdirSync(join(dir, 'root'));
writeFileSync(join(dir, 'root', 'in.txt'), 'x');
symlinkSync(join(dir, 'small.txt'), join(dir, 'root', 'out-link'));

function rejectsWith(p: Promise<unknown>, re: RegExp) {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof FileError, `expected FileError, got ${String(e)}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one line');
    return true;
  });
}

describe('io/files', () => {
  it('reads a regular file under its cap', async () => {
    assert.equal(await readTextFile(join(dir, 'small.txt'), { kind: 'textList' }), 'hello');
  });
  it('refuses a FIFO without blocking', async () => {
    await rejectsWith(readRegularFile(fifo, { kind: 'configJson', what: 'config.json' }), /FIFO.*expected config\.json/);
    await rejectsWith(statRegularFile(fifo, { what: 'image' }), /FIFO/);
  });
  it('refuses /dev/zero and folders', async () => {
    await rejectsWith(readRegularFile('/dev/zero', { kind: 'image' }), /character device/);
    await rejectsWith(readRegularFile(dir, { kind: 'image' }), /a folder/);
  });
  it('refuses a file over its cap before reading it', async () => {
    await rejectsWith(readRegularFile(join(dir, 'small.txt'), { maxBytes: 4, what: 'caption file' }), /5 bytes is over the 4 bytes limit for caption file/);
  });
  it('names missing files and NUL bytes', async () => {
    await rejectsWith(readRegularFile(join(dir, 'nope'), { kind: 'image' }), /nope: file not found/);
    await rejectsWith(readRegularFile('a\0b', { kind: 'image' }), /NUL/);
  });
  it('reports bad JSON on one line without echoing the bytes', async () => {
    await assert.rejects(readJsonFile(join(dir, 'bad.json'), { kind: 'configJson' }), (e: Error) => {
      assert.match(e.message, /not valid JSON/);
      assert.ok(!e.message.includes('secret-bytes'));
      return true;
    });
  });
  it('keeps paths inside their root', async () => {
    const root = join(dir, 'root');
    assert.equal(await resolveInside(root, 'in.txt'), join(root, 'in.txt'));
    await rejectsWith(resolveInside(root, '../small.txt', 'image path'), /escapes the root/);
    await rejectsWith(resolveInside(root, '/etc/passwd', 'image path'), /escapes the root/);
    await rejectsWith(resolveInside(root, 'out-link', 'image path'), /links outside/);
  });
  it('escapes control characters in file names', async () => {
    await rejectsWith(readRegularFile(join(dir, 'a\nb'), { kind: 'image' }), /a\\nb/);
  });
});
