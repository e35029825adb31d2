import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { readManifest } from '../src/filter/manifest.js';
import { queueNameFor } from '../src/filter/queue.js';
import { type FilterDataset, writeFilterDataset } from './helpers/filter-dataset.js';
import { FIXTURES } from './helpers/goldens.js';
import { partCount, sleep, spawnCli, TINY, waitFor } from './helpers/filter-cli.js';
import { readParts, tempFiles } from './helpers/filter-parts.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let dir: string;
let ds: FilterDataset;
let redis: RedisServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'blip-filter-queue-'));
  [ds, redis] = await Promise.all([writeFilterDataset(dir, { images: 60, captionsPerImage: 20 }), startRedis()]);
});

after(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('3 filter-workers on a real redis-server, one SIGKILLed mid-unit: every unit completes, every id exactly once', async () => {
  const output = join(dir, 'out');
  const plan = ['filter', '--model', TINY, '--input', join(dir, 'data-*.csv'), '--image-root', ds.imageRoot, '--output', output, '--unit-rows', '50', '--queue', redis.url, '--enqueue-only', '--json'];
  const planned = await spawnCli(plan).done;
  assert.equal(planned.code, 0, planned.stderr);
  const p = JSON.parse(planned.stdout);
  assert.equal(p.queue, queueNameFor(output));
  assert.equal(p.added, p.units);
  // Planning again adds nothing: the job ids are the unit ids.
  const replanned = JSON.parse((await spawnCli(plan).done).stdout);
  assert.equal(replanned.added, 0);
  assert.equal(replanned.already_queued, p.units);

  // A worker with another model refuses the queue without taking a job.
  const other = await spawnCli(['filter-worker', '--queue', redis.url, '--model', `${FIXTURES}/models/tiny-384`]).done;
  assert.equal(other.code, 1);
  assert.match(other.stderr.trim(), /^blip-itm: filter-worker refused: queue blip-itm-filter-\w+ \(.*\) is for model .*tiny/);
  assert.equal(other.stderr.trim().split('\n').length, 1);

  const client = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue(p.queue, { connection: client });
  try {
    assert.equal(await queue.getJobCountByTypes('waiting'), p.units);
    const workers = [0, 1, 2].map(() => spawnCli(['filter-worker', '--queue', redis.url, '--lock-ms', '1500']));
    const victim = workers[0];
    const victimName = `${hostname()}:${victim.child.pid}`;
    let victimJob: string | undefined;
    // Frozen with SIGSTOP before the check, so the unit seen active cannot complete between the
    // check and the kill (a worker that finished it just then would leave nothing to retry). The
    // pause lets a completion the worker had already sent reach Redis before the check reads it.
    await waitFor('the first worker to be mid-unit', async () => {
      if (partCount(output) < 1) return false;
      const active = await queue.getActive();
      const candidate = active.find((j) => j.processedBy === victimName)?.id;
      if (candidate === undefined) return false;
      victim.child.kill('SIGSTOP');
      await sleep(250);
      const job = await queue.getJob(candidate);
      if (job && (await job.getState()) === 'active' && job.processedBy === victimName) {
        victimJob = candidate;
        return true;
      }
      victim.child.kill('SIGCONT');
      return false;
    }, 90_000, 100);
    victim.child.kill('SIGKILL');
    assert.equal((await victim.done).signal, 'SIGKILL');

    for (const w of workers.slice(1)) {
      const hung = setTimeout(() => w.child.kill('SIGTERM'), 120_000);
      const r = await w.done;
      clearTimeout(hung);
      assert.equal(r.code, 0, `worker exited with ${r.code ?? r.signal}: ${r.stderr}`);
      assert.match(r.stdout, /^filter-worker: \d+ unit\(s\)/);
    }
    const job = await queue.getJob(victimJob!);
    assert.equal(await job!.getState(), 'completed', 'the killed worker\'s unit was retried and completed');
    assert.notEqual(job!.processedBy, victimName, 'by another worker');
    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active');
    assert.deepEqual(counts, { completed: p.units, failed: 0, waiting: 0, active: 0 });
  } finally {
    await queue.close();
    client.disconnect();
  }

  const manifest = (await readManifest(output))!;
  assert.equal(manifest.totals.unitsDone, p.units);
  assert.equal(manifest.totals.rows, ds.rows.length);
  const ids = (await readParts(output, 'id')).map((r) => r.id).sort();
  assert.deepEqual(ids, ds.rows.map((r) => r.id).sort(), 'every input id exactly once');
  assert.deepEqual(tempFiles(output), []);

  // filter --queue without --enqueue-only plans and works itself; on a finished output there is nothing left.
  const rerun = await spawnCli(plan.filter((a) => a !== '--enqueue-only')).done;
  assert.equal(rerun.code, 0, rerun.stderr);
  const again = JSON.parse(rerun.stdout);
  assert.deepEqual([again.added, again.retried, again.units_run, again.units_done, again.rows], [0, 0, 0, p.units, ds.rows.length]);

  const status = await spawnCli(['filter-status', '--queue', redis.url, '--json']).done;
  assert.equal(status.code, 0, status.stderr);
  const s = JSON.parse(status.stdout).queues;
  assert.equal(s.length, 1);
  assert.equal(s[0].output, output);
  assert.equal(s[0].counts.completed, p.units);
  assert.equal(s[0].totals.rows, ds.rows.length);
  const text = await spawnCli(['filter-status', '--queue', redis.url]).done;
  assert.match(text.stdout, new RegExp(`units: ${p.units} completed, 0 active, 0 waiting, 0 delayed, 0 failed`));
});
