import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { serveCommand } from '../src/cli/serve.js';
import { UsageError } from '../src/errors.js';

// `blip-itm serve` as users start it: the real CLI in a child process.

const TINY = 'test/fixtures/models/tiny';
const CLI = ['--import', 'tsx', 'src/cli/main.ts', 'serve'];
const env = { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: 'test/fixtures/__no_cache__' };

function serveSync(...args: string[]) {
  return spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', env, timeout: 30_000 });
}

test('serve refuses an exposed address without --api-key-file or --insecure-no-auth, before loading anything', () => {
  const r = serveSync('--model', TINY, '--host', '0.0.0.0');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^blip-itm: serve: --host 0\.0\.0\.0 is reachable from other machines; give --api-key-file/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  const missing = serveSync('--model', TINY, '--api-key-file', 'no/such/key');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^blip-itm: no\/such\/key: file not found\n$/);
});

test('serve\'s other argument mistakes are usage errors naming the option', async () => {
  const quiet = { status() {}, done() {} };
  const dir = mkdtempSync(join(tmpdir(), 'blip-serve-'));
  writeFileSync(join(dir, 'short'), 'abc\n');
  const cases: Array<[string[], RegExp]> = [
    [['--host', '0.0.0.0', '--insecure-no-auth', '--api-key-file', 'x'], /not both/],
    [['--port', '70000'], /--port must be an integer from 0 to 65535/],
    [['--max-batch', '0'], /--max-batch must be an integer from 1/],
    [['--cache-mb', 'lots'], /--cache-mb must be an integer/],
    [['--max-texts', '1.5'], /--max-texts must be an integer/],
    [['--itm-text-start', 'xyz'], /--itm-text-start/],
    [['--api-key-file', join(dir, 'short')], /at least 16 characters/],
    [['--bogus'], /serve: Unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    await assert.rejects(serveCommand(['--model', TINY, ...args], quiet), (e: Error) => e instanceof UsageError && message.test(e.message), args.join(' '));
  }
  assert.match(await serveCommand(['--help'], quiet), /--api-key-file/);
});

test('SIGTERM during in-flight requests: they complete, the process exits 0; one log line per request, no texts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'blip-serve-'));
  const keyFile = join(dir, 'key');
  writeFileSync(keyFile, 'a-long-enough-api-key-for-tests\n');
  // A long batch wait keeps the requests in flight while the signal arrives.
  const child = spawn(process.execPath, [...CLI, '--model', TINY, '--port', '0', '--max-wait-ms', '500', '--api-key-file', keyFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines: string[] = [];
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += String(d); });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(line);
        const entry = JSON.parse(line);
        if (entry.url) resolve(entry.url);
      });
      void exit.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    for (let i = 0; i < 200; i++) {
      if ((await fetch(`${url}/readyz`)).status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const auth = { authorization: 'Bearer a-long-enough-api-key-for-tests' };
    const image = readFileSync('test/fixtures/images/coco_000000039769.png').toString('base64');
    const secretCaption = 'a caption that must never appear in the logs';
    let answered = 0;
    const inflight = Array.from({ length: 4 }, (_, i) => fetch(`${url}/v1/score`, {
      method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ images: [image], texts: [`${secretCaption} ${i}`] }),
    }).then(async (r) => {
      answered++;
      return { status: r.status, json: await r.json() };
    }));
    // Signal once all four are queued in the engine.
    for (let i = 0; i < 100; i++) {
      const depth = Number(/blip_engine_queue_depth (\d+)/.exec(await (await fetch(`${url}/metrics`, { headers: auth })).text())?.[1]);
      if (depth >= 4) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const t0 = performance.now();
    child.kill('SIGTERM');
    assert.equal(answered, 0, 'the requests were still in flight when the signal was sent');
    const results = await Promise.all(inflight);

    for (const r of results) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.pairs.length, 1);
    }
    assert.equal(await exit, 0, stderr);
    assert.ok(performance.now() - t0 < 15_000, 'kept-alive connections do not hold the shutdown to its 30 s grace');
    await assert.rejects(fetch(`${url}/healthz`), 'no longer listening');
    const requestLines = lines.map((l) => JSON.parse(l)).filter((e) => e.msg === 'request' && e.path === '/v1/score');
    assert.equal(requestLines.length, 4, 'one line per request');
    for (const e of requestLines) {
      assert.equal(e.status, 200);
      assert.equal(e.images, 1);
      assert.equal(e.texts, 1);
    }
    const all = lines.join('\n');
    assert.ok(!all.includes(secretCaption), 'no caption text in the logs');
    assert.ok(!all.includes(image.slice(0, 64)), 'no image bytes in the logs');
    assert.ok(!all.includes('a-long-enough-api-key'), 'no key in the logs');
    assert.ok(lines.some((l) => /stopped/.test(l)));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
