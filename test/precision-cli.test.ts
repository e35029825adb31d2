import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SWIFTSHADER_ICD } from '../src/runtime/provider-errors.js';
import { FIXTURES, goldenFile, maxAbsDiff } from './helpers/goldens.js';

const TINY = `${FIXTURES}/models/tiny`;
const IMAGE = `${FIXTURES}/images/coco_000000039769.png`;
const work = mkdtempSync(join(tmpdir(), 'blip-precision-cli-'));
after(() => rmSync(work, { recursive: true, force: true }));
// The weights cache of --dtype fp16/int8 goes here, not into the user's home.
const ENV = { ...process.env, HF_HUB_OFFLINE: '1', XDG_CACHE_HOME: join(work, 'cache'), LANCEDB_LOG: 'error' };

function run(args: string[], env: NodeJS.ProcessEnv = ENV): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], { encoding: 'utf8', env, timeout: 240_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const cli = (...args: string[]) => run(['src/cli/main.ts', ...args]);

function oneLineError(r: { status: number | null; stderr: string }, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one error line, got:\n${r.stderr}`);
  assert.match(lines[0], /^blip-itm: /);
  assert.match(lines[0], pattern);
}

describe('--dtype on the command line', () => {
  test('--dtype fp64 is a usage error (exit 2) on every model-loading command', () => {
    for (const args of [
      ['score', '--model', TINY, '-i', IMAGE, '-t', 'x'],
      ['rank', '--model', TINY, '--image', IMAGE, '--texts', '-'],
      ['eval', '--model', TINY, '--annotations', `${FIXTURES}/retrieval/dataset.json`, '--images', `${FIXTURES}/images`],
      ['index', `${FIXTURES}/images`, '--model', TINY, '--db', join(work, 'never')],
      ['search', '--db', join(work, 'never'), '--text', 'x'],
    ]) oneLineError(cli(...args, '--dtype', 'fp64'), 2, /--dtype must be one of fp32, fp16, int8 \(or q8 for int8\), got "fp64"/);
    assert.ok(!existsSync(join(work, 'never')));
  });

  test('score --dtype q8 runs int8; an index built in int8 is searched in int8 and refuses fp32', () => {
    const score = cli('score', '--model', TINY, '-i', IMAGE, '-t', 'two cats', '--dtype', 'q8', '--json');
    assert.equal(score.status, 0, score.stderr);
    assert.ok(JSON.parse(score.stdout).pairs[0].itm_probability > 0);
    const db = join(work, 'int8-index');
    const folder = join(work, 'images');
    spawnSync('cp', ['-r', `${FIXTURES}/images`, folder]);
    const index = cli('index', folder, '--db', db, '--model', TINY, '--dtype', 'int8', '--json');
    assert.equal(index.status, 0, index.stderr);
    assert.equal(JSON.parse(index.stdout).model_identity.dtype, 'int8');
    const search = cli('search', '--db', db, '--text', 'two cats', '--k', '2', '--rerank', '2', '--json');
    assert.equal(search.status, 0, search.stderr);
    assert.equal(JSON.parse(search.stdout).results.length, 2);
    oneLineError(cli('search', '--db', db, '--text', 'two cats', '--dtype', 'fp32'), 1, /holds features of .*int8.*, not of .*tiny/);
    oneLineError(cli('index', folder, '--db', db, '--model', TINY, '--dtype', 'fp16'), 1, /int8.*fp16|fp16.*int8/);
    assert.equal(readdirSync(join(work, 'cache', 'blip-itm', 'weights')).length, 1, 'one cached int8 weights file, reused');
  });
});

const swiftshader = existsSync(SWIFTSHADER_ICD);
describe('--device webgpu', { skip: swiftshader ? false : `no SwiftShader ICD at ${SWIFTSHADER_ICD} (apt install chromium-common libvulkan1)` }, () => {
  const gpuEnv = { ...ENV, VK_ICD_FILENAMES: SWIFTSHADER_ICD, XDG_RUNTIME_DIR: mkdtempSync(join(work, 'xdg-')) };

  // tiny only: tiny-384's 577-token vision pass takes over 4 minutes on SwiftShader (2 vCPUs).
  for (const name of ['tiny'] as const) {
    test(`${name} on SwiftShader reproduces the fp32 goldens (ITM 1e-4, cosine 1e-5)`, async () => {
      const goldenName = `model_${name}.safetensors`;
      const r = run(['test/helpers/webgpu-child.ts', `${FIXTURES}/models/${name}`, goldenName, 'webgpu'], gpuEnv);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      const golden = await goldenFile(goldenName);
      const itm = maxAbsDiff(out.itm, (await golden('itm/logits')).data as Float32Array);
      const cos = maxAbsDiff(out.cos, (await golden('cos/matrix')).data as Float32Array);
      console.log(`# ${name} webgpu (SwiftShader): max |ITM logit diff| ${itm.toExponential(2)}, max |cosine diff| ${cos.toExponential(2)}`);
      assert.ok(itm <= 1e-4, `ITM ${itm}`);
      assert.ok(cos <= 1e-5, `cosine ${cos}`);
    });
  }

  test('without an adapter: exit 1, one line saying what to install', () => {
    const r = run(['src/cli/main.ts', 'score', '--model', TINY, '-i', IMAGE, '-t', 'x', '--device', 'webgpu'], { ...ENV, VK_ICD_FILENAMES: join(work, 'no-such-icd.json') });
    oneLineError(r, 1, /--device webgpu: no WebGPU adapter found: install .*Vulkan driver.*VK_ICD_FILENAMES.*--device cpu/);
  });

  test('fp16 on an adapter without shader-f16: exit 1, one line', () => {
    const r = run(['src/cli/main.ts', 'score', '--model', TINY, '-i', IMAGE, '-t', 'x', '--device', 'webgpu', '--dtype', 'fp16'], gpuEnv);
    oneLineError(r, 1, /no shader-f16 support, which --dtype fp16 needs/);
  });
});
