import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getHFHubCachePath, scanCachedRepo } from '@huggingface/hub';
import {
  BLIP_ITM_FILES,
  HubError,
  parseModelReference,
  readHubEnv,
  resolveCheckpoint,
  type ResolveOptions,
} from '../src/checkpoint/hub.js';
import { createProgressBar, formatBytes, formatDuration, type DownloadProgress } from '../src/checkpoint/progress.js';
import { BlipError } from '../src/errors.js';
import {
  closedEndpoint,
  fakeCommit,
  folderFiles,
  gitBlobSha1,
  sha256,
  startMockHub,
  type MockHub,
  type MockRepo,
} from './helpers/mock-hub.js';

const TINY = fileURLToPath(new URL('./fixtures/models/tiny/', import.meta.url));
const REPO = 'blip-test/tiny-itm';
const MAIN = fakeCommit('main');
const PR5 = fakeCommit('pr5');
const STORAGE = 'models--blip-test--tiny-itm';

const tinyFiles = folderFiles(TINY);
const prFiles: Record<string, Buffer> = {
  ...tinyFiles,
  'config.json': Buffer.from(JSON.stringify({ ...JSON.parse(tinyFiles['config.json'].toString()), _pr: 5 }, null, 2)),
};

function tinyRepo(): MockRepo {
  return { id: REPO, refs: { main: MAIN, 'refs/pr/5': PR5 }, commits: { [MAIN]: tinyFiles, [PR5]: prFiles } };
}

const tmpDirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'blip-hub-test-'));
  tmpDirs.push(d);
  return d;
}
after(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

/** Options isolated from the machine: a temp cache, the mock endpoint, an env without HF_* (no token file). */
function optsFor(cacheDir: string, endpoint: string, extra: ResolveOptions = {}): ResolveOptions {
  return { cacheDir, endpoint, onProgress: false, env: { HF_HOME: join(cacheDir, 'no-hf-home') }, ...extra };
}

/** All files under dir (links not followed), relative, sorted. */
function walk(dir: string, base = dir): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (lstatSync(p).isDirectory()) out.push(...walk(p, base));
    else out.push(relative(base, p));
  }
  return out.sort();
}


/** The BLIP files of the tiny fixture repo (pytorch_model.bin is never fetched beside model.safetensors). */
const TINY_FILES = ['added_tokens.json', 'config.json', 'model.safetensors', 'preprocessor_config.json', 'special_tokens_map.json', 'tokenizer_config.json', 'vocab.txt'];

describe('readHubEnv', () => {
  it('defaults under ~/.cache/huggingface', () => {
    const e = readHubEnv({ HOME: '/home/u' });
    assert.equal(e.cacheDir, resolve('/home/u/.cache/huggingface/hub'));
    assert.equal(e.hfHome, resolve('/home/u/.cache/huggingface'));
    assert.equal(e.endpoint, 'https://huggingface.co');
    assert.equal(e.offline, false);
    assert.equal(e.token, undefined);
    assert.equal(e.etagTimeoutMs, 10_000);
  });

  it('cache precedence: HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > HF_HOME/hub > XDG_CACHE_HOME', () => {
    assert.equal(readHubEnv({ HOME: '/h', XDG_CACHE_HOME: '/x' }).cacheDir, resolve('/x/huggingface/hub'));
    assert.equal(readHubEnv({ HOME: '/h', XDG_CACHE_HOME: '/x', HF_HOME: '/hf' }).cacheDir, resolve('/hf/hub'));
    assert.equal(readHubEnv({ HOME: '/h', HF_HOME: '~/hf' }).cacheDir, resolve('/h/hf/hub'));
    assert.equal(readHubEnv({ HOME: '/h', HF_HOME: '/hf', HUGGINGFACE_HUB_CACHE: '/old' }).cacheDir, resolve('/old'));
    assert.equal(readHubEnv({ HOME: '/h', HF_HOME: '/hf', HUGGINGFACE_HUB_CACHE: '/old', HF_HUB_CACHE: '/c' }).cacheDir, resolve('/c'));
  });

  it('agrees with @huggingface/hub getHFHubCachePath on this process', () => {
    assert.equal(readHubEnv(process.env).cacheDir, resolve(getHFHubCachePath()));
  });

  it('endpoint, offline, progress bars, timeouts', () => {
    assert.equal(readHubEnv({ HF_ENDPOINT: 'http://mirror.local/' }).endpoint, 'http://mirror.local');
    for (const v of ['1', 'true', 'YES', 'on']) assert.equal(readHubEnv({ HF_HUB_OFFLINE: v }).offline, true, v);
    for (const v of ['0', '', 'false', 'no']) assert.equal(readHubEnv({ HF_HUB_OFFLINE: v }).offline, false, v);
    assert.equal(readHubEnv({ HF_HUB_DISABLE_PROGRESS_BARS: '1' }).disableProgressBars, true);
    assert.equal(readHubEnv({ HF_HUB_ETAG_TIMEOUT: '2.5', HF_HUB_DOWNLOAD_TIMEOUT: 'x' }).etagTimeoutMs, 2500);
    assert.equal(readHubEnv({ HF_HUB_DOWNLOAD_TIMEOUT: 'x' }).downloadTimeoutMs, 10_000);
  });

  it('token: HF_TOKEN > HUGGING_FACE_HUB_TOKEN > HF_TOKEN_PATH > $HF_HOME/token', async () => {
    const home = await tempDir();
    await writeFile(join(home, 'token'), 'hf_fromfile\n');
    await writeFile(join(home, 'other-token'), 'hf_frompath');
    assert.equal(readHubEnv({ HF_HOME: home }).token, 'hf_fromfile');
    assert.equal(readHubEnv({ HF_HOME: home }).tokenSource, join(home, 'token'));
    assert.equal(readHubEnv({ HF_HOME: home, HF_TOKEN_PATH: join(home, 'other-token') }).token, 'hf_frompath');
    assert.equal(readHubEnv({ HF_HOME: home, HUGGING_FACE_HUB_TOKEN: 'hf_legacy' }).token, 'hf_legacy');
    assert.equal(readHubEnv({ HF_HOME: home, HUGGING_FACE_HUB_TOKEN: 'hf_legacy', HF_TOKEN: 'hf_env' }).token, 'hf_env');
    assert.equal(readHubEnv({ HF_HOME: join(home, 'nothing-here') }).token, undefined);
  });
});

describe('parseModelReference and local folders', () => {
  it('existing folders are local: absolute, ./relative, ~', async () => {
    assert.deepEqual(await parseModelReference(TINY), { kind: 'local', path: resolve(TINY) });
    const rel = `./${relative(process.cwd(), TINY)}`;
    assert.deepEqual(await parseModelReference(rel), { kind: 'local', path: resolve(TINY) });
    const home = await tempDir();
    await mkdir(join(home, 'models', 'mine'), { recursive: true });
    assert.deepEqual(await parseModelReference('~/models/mine', home), { kind: 'local', path: join(home, 'models', 'mine') });
  });

  it('a missing path is an error naming it', async () => {
    for (const p of ['./no/such/model', '/no/such/model', '~/no-such-model', 'a/b/c', 'C:\\models\\x']) {
      await assert.rejects(parseModelReference(p, '/home/u'), (e: unknown) => {
        assert.ok(e instanceof BlipError, String(e));
        assert.match(e.message, /no such folder/);
        assert.ok(e.message.includes(p), e.message);
        return true;
      });
    }
    await assert.rejects(parseModelReference(join(TINY, 'config.json')), /is a file/);
  });

  it('repo ids, with @revision', async () => {
    assert.deepEqual(await parseModelReference('Salesforce/blip-itm-base-coco'), {
      kind: 'hub',
      repo: 'Salesforce/blip-itm-base-coco',
      revision: undefined,
    });
    assert.deepEqual(await parseModelReference('owner/name@refs/pr/5'), { kind: 'hub', repo: 'owner/name', revision: 'refs/pr/5' });
    assert.deepEqual(await parseModelReference('owner/name@v1.0'), { kind: 'hub', repo: 'owner/name', revision: 'v1.0' });
    await assert.rejects(parseModelReference('owner/na me'), /neither an existing folder nor a Hugging Face repo id/);
    await assert.rejects(parseModelReference('owner/name@'), /invalid revision/);
    await assert.rejects(parseModelReference('owner/name@../../etc'), /invalid revision/);
    await assert.rejects(parseModelReference('   '), /empty model reference/);
  });

  it('resolveCheckpoint uses a local folder as is, listing the spec files it has', async () => {
    const r = await resolveCheckpoint(TINY, { onProgress: false });
    assert.equal(r.source, 'local');
    assert.equal(r.dir, resolve(TINY));
    assert.equal(r.commit, undefined);
    assert.deepEqual(Object.keys(r.files).sort(), TINY_FILES);
    assert.equal(r.files['model.safetensors'], join(resolve(TINY), 'model.safetensors'));
  });
});

describe('resolveCheckpoint from the Hub', () => {
  let hub: MockHub;
  before(async () => {
    hub = await startMockHub([tinyRepo()]);
  });
  after(async () => {
    await hub.close();
  });
  afterEach(() => {
    hub.requests.length = 0;
    hub.corrupt.clear();
    hub.cutOnce.clear();
    hub.stallOnce.clear();
    hub.gated.clear();
    hub.token = undefined;
  });

  it('downloads into the huggingface_hub cache layout', async () => {
    const cache = await tempDir();
    const r = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    const storage = join(cache, STORAGE);
    assert.equal(r.source, 'hub');
    assert.equal(r.id, REPO);
    assert.equal(r.revision, 'main');
    assert.equal(r.commit, MAIN);
    assert.equal(r.dir, join(storage, 'snapshots', MAIN));

    // Exactly the BLIP files; pytorch_model.bin is not fetched when model.safetensors exists.
    assert.deepEqual(Object.keys(r.files).sort(), TINY_FILES);
    for (const [name, p] of Object.entries(r.files)) {
      assert.equal(p, join(r.dir, name));
      assert.ok(readFileSync(p).equals(tinyFiles[name]), `${name} content`);
      // snapshots/<commit>/<file> -> ../../blobs/<etag>: sha256 for LFS, git blob sha1 otherwise
      assert.ok(lstatSync(p).isSymbolicLink(), `${name} is a symlink`);
      const etag = name.endsWith('.safetensors') ? sha256(tinyFiles[name]) : gitBlobSha1(tinyFiles[name]);
      assert.equal(readlinkSync(p), `../../blobs/${etag}`);
    }
    assert.equal(readFileSync(join(storage, 'refs', 'main'), 'utf8'), MAIN); // no newline, like Python
    // Known-absent files are recorded like Python's .no_exist markers.
    assert.deepEqual(walk(join(storage, '.no_exist')), [join(MAIN, 'tokenizer.json')]);
    const blobs = await readdir(join(storage, 'blobs'));
    assert.equal(blobs.length, 7);
    assert.ok(!blobs.some((b) => b.endsWith('.incomplete')));
    assert.ok(!hub.requests.some((q) => q.url.includes('pytorch_model.bin')));

    // The protocol: 1 API call, 1 HEAD per file, GETs for git files on the Hub and LFS files on the CDN.
    assert.equal(hub.requestsTo('hub').filter((q) => q.url.startsWith('/api/models/blip-test/tiny-itm/revision/main')).length, 1);
    assert.equal(hub.requestsTo('hub').filter((q) => q.method === 'HEAD').length, 7);
    assert.deepEqual(
      hub.requestsTo('cdn').map((q) => q.url),
      [`/blobs/${sha256(tinyFiles['model.safetensors'])}`],
    );
    assert.ok(hub.requests.filter((q) => q.method === 'HEAD').every((q) => q.url.includes(`/resolve/${MAIN}/`)));

    // @huggingface/hub's cache scanner understands what we wrote.
    const scanned = await scanCachedRepo(storage);
    assert.equal(scanned.id.name, REPO);
    assert.deepEqual(
      scanned.revisions.map((v) => [v.commitOid, v.refs, v.files.length]),
      [[MAIN, ['main'], 7]],
    );
  });

  it('reuses a complete cache without any request', async () => {
    const cache = await tempDir();
    const first = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    hub.requests.length = 0;
    const again = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    assert.deepEqual(again, first);
    const bySha = await resolveCheckpoint(`${REPO}@${MAIN}`, optsFor(cache, hub.endpoint));
    assert.deepEqual(bySha.files, first.files);
    assert.equal(hub.requests.length, 0);

    // refresh: asks the Hub for the commit, but downloads nothing already there.
    await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint, { refresh: true }));
    assert.deepEqual(
      hub.requests.map((q) => q.method),
      ['GET'],
    );
    assert.match(hub.requests[0].url, /^\/api\/models\//);
  });

  it('reuses a cache laid out by Python huggingface_hub (and re-links a known blob without downloading)', async () => {
    const cache = await tempDir();
    const storage = join(cache, STORAGE);
    const snap = join(storage, 'snapshots', MAIN);
    await mkdir(join(storage, 'blobs'), { recursive: true });
    await mkdir(snap, { recursive: true });
    await mkdir(join(storage, '.no_exist', MAIN), { recursive: true });
    await mkdir(join(storage, 'refs'), { recursive: true });
    for (const [name, content] of Object.entries(tinyFiles)) {
      if (name === 'pytorch_model.bin') continue;
      const etag = name.endsWith('.safetensors') ? sha256(content) : gitBlobSha1(content);
      await writeFile(join(storage, 'blobs', etag), content);
      if (name !== 'vocab.txt') await symlink(`../../blobs/${etag}`, join(snap, name));
    }
    await writeFile(join(storage, '.no_exist', MAIN, 'tokenizer.json'), '');
    await writeFile(join(storage, 'refs', 'main'), MAIN);

    // vocab.txt has a blob but no snapshot link: one HEAD gives its etag, the blob is linked, no GET.
    const r = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    assert.equal(r.commit, MAIN);
    assert.ok(readFileSync(r.files['vocab.txt']).equals(tinyFiles['vocab.txt']));
    assert.deepEqual(
      hub.requests.map((q) => `${q.method} ${q.url.split('?')[0]}`),
      [`GET /api/models/${REPO}/revision/main`, `HEAD /${REPO}/resolve/${MAIN}/vocab.txt`],
    );

    hub.requests.length = 0;
    await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    assert.equal(hub.requests.length, 0);
  });

  it('resumes a partial .incomplete download with a Range request', async () => {
    const cache = await tempDir();
    const weights = tinyFiles['model.safetensors'];
    const oid = sha256(weights);
    const blobs = join(cache, STORAGE, 'blobs');
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${oid}.incomplete`), weights.subarray(0, 1_000_000));

    const events: DownloadProgress[] = [];
    const r = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint, { onProgress: (p) => events.push({ ...p }) }));
    const gets = hub.requestsTo('cdn');
    assert.equal(gets.length, 1);
    assert.equal(gets[0].headers.range, 'bytes=1000000-');
    assert.ok(readFileSync(r.files['model.safetensors']).equals(weights));
    assert.ok(!existsSync(join(blobs, `${oid}.incomplete`)));

    const w = events.filter((e) => e.file === 'model.safetensors');
    assert.equal(w[0].phase, 'start');
    assert.equal(w[0].resumedFrom, 1_000_000);
    assert.equal(w.at(-1)!.phase, 'done');
    assert.equal(w.at(-1)!.loaded, weights.length);
    assert.equal(w.at(-1)!.total, weights.length);
  });

  it('resumes within the same call when the connection drops mid-file', async () => {
    const cache = await tempDir();
    hub.cutOnce.set('model.safetensors', 1_500_000);
    const r = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    const gets = hub.requestsTo('cdn');
    assert.equal(gets.length, 2);
    assert.equal(gets[0].headers.range, undefined);
    const m = /^bytes=(\d+)-$/.exec(String(gets[1].headers.range));
    assert.ok(m !== null && Number(m[1]) > 0 && Number(m[1]) <= 1_500_000, String(gets[1].headers.range));
    assert.ok(readFileSync(r.files['model.safetensors']).equals(tinyFiles['model.safetensors']));
  });

  it('a stalled download times out (HF_HUB_DOWNLOAD_TIMEOUT) and resumes', async () => {
    const cache = await tempDir();
    hub.stallOnce.set('model.safetensors', 700_000);
    const opts = optsFor(cache, hub.endpoint);
    const r = await resolveCheckpoint(REPO, { ...opts, env: { ...opts.env, HF_HUB_DOWNLOAD_TIMEOUT: '0.3' } });
    const gets = hub.requestsTo('cdn');
    assert.equal(gets.length, 2);
    const m = /^bytes=(\d+)-$/.exec(String(gets[1].headers.range));
    assert.ok(m !== null && Number(m[1]) > 0 && Number(m[1]) <= 700_000, String(gets[1].headers.range));
    assert.ok(readFileSync(r.files['model.safetensors']).equals(tinyFiles['model.safetensors']));
  });

  it('starts over when resumed data fails the checksum', async () => {
    const cache = await tempDir();
    const oid = sha256(tinyFiles['model.safetensors']);
    const blobs = join(cache, STORAGE, 'blobs');
    await mkdir(blobs, { recursive: true });
    await writeFile(join(blobs, `${oid}.incomplete`), Buffer.alloc(500_000, 7)); // garbage left by someone
    const r = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    assert.deepEqual(
      hub.requestsTo('cdn').map((q) => q.headers.range),
      ['bytes=500000-', undefined],
    );
    assert.ok(readFileSync(r.files['model.safetensors']).equals(tinyFiles['model.safetensors']));
  });

  it('rejects content that does not match the etag, leaving nothing behind', async () => {
    for (const [name, kind] of [
      ['model.safetensors', 'sha256'],
      ['config.json', 'git-sha1'],
    ] as const) {
      const cache = await tempDir();
      const bad = Buffer.from(tinyFiles[name]);
      bad[bad.length >> 1] ^= 0xff; // same size, one byte different
      hub.corrupt.set(name, bad);
      await assert.rejects(resolveCheckpoint(REPO, optsFor(cache, hub.endpoint)), (e: unknown) => {
        assert.ok(e instanceof HubError && e.kind === 'integrity', String(e));
        assert.ok(e.message.includes(name) && e.message.includes(kind), e.message);
        return true;
      });
      hub.corrupt.clear();
      const storage = join(cache, STORAGE);
      const etag = kind === 'sha256' ? sha256(tinyFiles[name]) : gitBlobSha1(tinyFiles[name]);
      assert.ok(!existsSync(join(storage, 'blobs', etag)), 'no blob');
      assert.ok(!existsSync(join(storage, 'blobs', `${etag}.incomplete`)), 'no partial');
      assert.ok(!existsSync(join(storage, 'snapshots', MAIN, name)), 'no snapshot entry');
      assert.ok(!walk(storage).some((f) => f.includes('.tmp')), 'no temp files');
    }
  });

  it('offline: a filled cache works with no request, an empty one gives a clear error', async () => {
    const cache = await tempDir();
    const online = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    hub.requests.length = 0;

    const viaOption = await resolveCheckpoint(REPO, optsFor(cache, await closedEndpoint(), { offline: true }));
    assert.deepEqual(viaOption.files, online.files);
    // The environment alone: HF_HUB_OFFLINE + HF_HUB_CACHE + HF_ENDPOINT.
    const viaEnv = await resolveCheckpoint(REPO, {
      onProgress: false,
      env: { HF_HUB_OFFLINE: '1', HF_HUB_CACHE: cache, HF_ENDPOINT: hub.endpoint, HF_HOME: join(cache, 'x') },
    });
    assert.deepEqual(viaEnv.files, online.files);
    assert.equal(hub.requests.length, 0);

    const empty = await tempDir();
    await assert.rejects(resolveCheckpoint(REPO, optsFor(empty, hub.endpoint, { offline: true })), (e: unknown) => {
      assert.ok(e instanceof HubError && e.kind === 'offline', String(e));
      for (const s of ['HF_HUB_OFFLINE', `${REPO}@main`, 'has no copy', '--model ./path/to/folder', empty]) {
        assert.ok(e.message.includes(s), `${s} in: ${e.message}`);
      }
      return true;
    });

    // A snapshot missing its weights (e.g. blob deleted): offline names what is missing.
    await rm(join(cache, STORAGE, 'blobs', sha256(tinyFiles['model.safetensors'])));
    await assert.rejects(resolveCheckpoint(REPO, optsFor(cache, hub.endpoint, { offline: true })), /only part of .*model weights/);
    assert.equal(hub.requests.length, 0);
  });

  it('network down: a clear error saying what was tried and what to do', async () => {
    const cache = await tempDir();
    const down = await closedEndpoint();
    await assert.rejects(resolveCheckpoint(`${REPO}@v2`, optsFor(cache, down)), (e: unknown) => {
      assert.ok(e instanceof HubError && e.kind === 'network', String(e));
      for (const s of [
        down,
        `${REPO}@v2`,
        'connection refused',
        'the cache',
        'has nothing for it',
        '--model ./path/to/folder',
        'HF_ENDPOINT',
        'HF_HUB_OFFLINE',
      ]) {
        assert.ok(e.message.includes(s), `${s} in: ${e.message}`);
      }
      return true;
    });

    // With a cached snapshot and refresh asked, an unreachable Hub falls back to the cache.
    const first = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    const fallback = await resolveCheckpoint(REPO, optsFor(cache, down, { refresh: true }));
    assert.deepEqual(fallback, first);
  });

  it('refs/pr/5 is selectable and cached at refs/refs/pr/5; the revision option wins over @', async () => {
    const cache = await tempDir();
    const r = await resolveCheckpoint(`${REPO}@main`, optsFor(cache, hub.endpoint, { revision: 'refs/pr/5' }));
    assert.equal(r.revision, 'refs/pr/5');
    assert.equal(r.commit, PR5);
    assert.equal(JSON.parse(readFileSync(r.files['config.json'], 'utf8'))._pr, 5);
    assert.equal(readFileSync(join(cache, STORAGE, 'refs', 'refs', 'pr', '5'), 'utf8'), PR5);
    assert.ok(hub.requests.some((q) => q.url.startsWith(`/api/models/${REPO}/revision/refs%2Fpr%2F5`)));
    // The weights blob is shared with main: switching to main downloads no LFS content again.
    hub.requests.length = 0;
    const m = await resolveCheckpoint(`${REPO}@refs/pr/5`, optsFor(cache, hub.endpoint));
    assert.equal(m.commit, PR5);
    assert.equal(hub.requests.length, 0);
    const onMain = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint));
    assert.equal(onMain.commit, MAIN);
    assert.equal(hub.requestsTo('cdn').length, 0);
  });

  it('sends the token to the Hub (not the CDN) and explains 401s', async () => {
    hub.token = 'hf_secret';
    const cache = await tempDir();
    await assert.rejects(resolveCheckpoint(REPO, optsFor(cache, hub.endpoint)), (e: unknown) => {
      assert.ok(e instanceof HubError, String(e));
      assert.match(e.message, /no such repo or revision/);
      assert.match(e.message, /HF_TOKEN/);
      return true;
    });
    await assert.rejects(resolveCheckpoint(REPO, optsFor(cache, hub.endpoint, { token: 'hf_wrong' })), (e: unknown) => {
      assert.ok(e instanceof HubError && e.kind === 'auth', String(e));
      assert.match(e.message, /refused the access token.*HF_TOKEN/);
      return true;
    });

    hub.requests.length = 0;
    // The token from the environment (HF_TOKEN), as the CLI would get it.
    await resolveCheckpoint(REPO, { cacheDir: cache, endpoint: hub.endpoint, onProgress: false, env: { HF_TOKEN: 'hf_secret', HF_HOME: cache } });
    assert.ok(hub.requestsTo('hub').length >= 8);
    assert.ok(hub.requestsTo('hub').every((q) => q.headers.authorization === 'Bearer hf_secret'));
    assert.equal(hub.requestsTo('cdn').length, 1);
    assert.equal(hub.requestsTo('cdn')[0].headers.authorization, undefined);
  });

  it('accepts tokens that do not start with hf_ (mirrors), and token:false sends none', async () => {
    hub.token = 'mirror-token-123';
    const cache = await tempDir();
    const r = await resolveCheckpoint(REPO, optsFor(cache, hub.endpoint, { token: 'mirror-token-123' }));
    assert.equal(r.commit, MAIN);
    hub.token = undefined;
    hub.requests.length = 0;
    await resolveCheckpoint(REPO, optsFor(await tempDir(), hub.endpoint, { token: false, env: { HF_TOKEN: 'hf_x' } }));
    assert.ok(hub.requests.every((q) => q.headers.authorization === undefined));
  });

  it('gated repos: says to accept the conditions and set HF_TOKEN', async () => {
    hub.gated.add(REPO);
    for (const token of [undefined, 'hf_not_accepted']) {
      await assert.rejects(resolveCheckpoint(REPO, optsFor(await tempDir(), hub.endpoint, { token })), (e: unknown) => {
        assert.ok(e instanceof HubError && e.kind === 'auth', String(e));
        assert.match(e.message, /gated repo.*accept its conditions at .*HF_TOKEN/);
        return true;
      });
    }
  });

  it('unknown repo or revision: "no such repo or revision"', async () => {
    const cache = await tempDir();
    for (const ref of ['blip-test/missing', `${REPO}@no-such-branch`]) {
      await assert.rejects(resolveCheckpoint(ref, optsFor(cache, hub.endpoint)), (e: unknown) => {
        assert.ok(e instanceof HubError && e.kind === 'not-found', String(e));
        assert.match(e.message, /no such repo or revision/);
        return true;
      });
    }
  });
});

describe('resolveCheckpoint: weight selection', () => {
  const C = fakeCommit('weights');
  const shardA = Buffer.alloc(3000, 1);
  const shardB = Buffer.alloc(2000, 2);
  const index = Buffer.from(
    JSON.stringify({
      metadata: { total_size: 5000 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' },
    }),
  );
  let hub: MockHub;
  before(async () => {
    hub = await startMockHub([
      { id: 'w/bin-only', refs: { main: C }, commits: { [C]: folderFiles(TINY, ['model.safetensors']) } },
      {
        id: 'w/sharded',
        refs: { main: C },
        commits: {
          [C]: {
            ...folderFiles(TINY, ['model.safetensors']),
            'model.safetensors.index.json': index,
            'model-00001-of-00002.safetensors': shardA,
            'model-00002-of-00002.safetensors': shardB,
          },
        },
      },
      { id: 'w/no-config', refs: { main: C }, commits: { [C]: folderFiles(TINY, ['config.json']) } },
    ]);
  });
  after(async () => {
    await hub.close();
  });

  it('falls back to pytorch_model.bin and records model.safetensors as absent', async () => {
    const cache = await tempDir();
    const r = await resolveCheckpoint('w/bin-only', optsFor(cache, hub.endpoint));
    assert.ok('pytorch_model.bin' in r.files && !('model.safetensors' in r.files));
    assert.ok(readFileSync(r.files['pytorch_model.bin']).equals(tinyFiles['pytorch_model.bin']));
    assert.ok(existsSync(join(cache, 'models--w--bin-only', '.no_exist', C, 'model.safetensors')));
    hub.requests.length = 0;
    await resolveCheckpoint('w/bin-only', optsFor(cache, hub.endpoint));
    assert.equal(hub.requests.length, 0);
  });

  it('fetches a sharded checkpoint: index and every shard', async () => {
    const cache = await tempDir();
    const r = await resolveCheckpoint('w/sharded', optsFor(cache, hub.endpoint));
    assert.ok(readFileSync(r.files['model-00001-of-00002.safetensors']).equals(shardA));
    assert.ok(readFileSync(r.files['model-00002-of-00002.safetensors']).equals(shardB));
    assert.ok('model.safetensors.index.json' in r.files && !('pytorch_model.bin' in r.files));
    hub.requests.length = 0;
    const again = await resolveCheckpoint('w/sharded', optsFor(cache, hub.endpoint, { offline: true }));
    assert.deepEqual(again.files, r.files);
    assert.equal(hub.requests.length, 0);
  });

  it('a repo without config.json is an error; custom file specs are honoured', async () => {
    const cache = await tempDir();
    await assert.rejects(resolveCheckpoint('w/no-config', optsFor(cache, hub.endpoint)), /has no config\.json/);
    const r = await resolveCheckpoint(
      'w/no-config',
      optsFor(cache, hub.endpoint, { files: { required: ['vocab.txt'], optional: ['nope.json'] } }),
    );
    assert.deepEqual(Object.keys(r.files), ['vocab.txt']);
    assert.deepEqual(BLIP_ITM_FILES.required, ['config.json', 'preprocessor_config.json', 'vocab.txt']);
  });
});

describe('progress bar', () => {
  it('draws bytes, rate and ETA on a TTY, nothing elsewhere', () => {
    assert.equal(createProgressBar({ isTTY: false, write: () => true }), undefined);
    let t = 0;
    const out: string[] = [];
    const bar = createProgressBar({ isTTY: true, columns: 100, write: (s: string) => out.push(s) }, { now: () => t })!;
    const base = { repo: 'o/n', file: 'model.safetensors', total: 10_000_000, resumedFrom: 0 };
    bar({ ...base, phase: 'start', loaded: 0 });
    t = 1000;
    bar({ ...base, phase: 'data', loaded: 2_500_000 });
    t = 4000;
    bar({ ...base, phase: 'done', loaded: 10_000_000 });
    assert.equal(out.length, 3);
    assert.match(out[1], /model\.safetensors\s+25% \[█+░+\] 2\.5 MB\/10\.0 MB {2}2\.5 MB\/s {2}ETA 0:03/);
    assert.match(out[2], /10\.0 MB {2}2\.5 MB\/s {2}in 0:04\n$/);
    assert.ok(out.every((s) => s.startsWith('\r\x1b[K') && s.length < 120));
  });

  it('formats', () => {
    assert.equal(formatBytes(999), '999 B');
    assert.equal(formatBytes(1_234_567), '1.2 MB');
    assert.equal(formatBytes(1_880_000_000), '1.9 GB');
    assert.equal(formatDuration(65), '1:05');
    assert.equal(formatDuration(3725), '1:02:05');
    assert.equal(formatDuration(Infinity), '?');
  });
});
