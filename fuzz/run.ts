import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type FuzzCase, generateCases, IMAGE, TINY } from './cases.js';

/**
 * `npm run fuzz`: runs every generated bad input (fuzz/cases.ts) against the built CLI
 * (dist/cli/main.js) and classifies each run:
 *
 *   clean error   exit 1 or 2, one stderr line "blip-itm: ...", no stack trace
 *   ran           exit 0 where running is right
 *   hang          killed at the per-run timeout
 *   crash         killed by a signal (SIGSEGV, SIGABRT, ...)
 *   memory        peak RSS over 3 GB
 *   stack trace   a trace or an "internal error" on stderr
 *   poor message  an error that is not one line
 *   silent        exit 0 on an input that must be refused, or a non-finite score printed
 *
 * Options: --timeout <s> (per run, default 60), --jobs <n> (default 2), --filter <text>.
 */

const MEMORY_LIMIT_KB = 3 * 1024 * 1024;
const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const timeoutS = Number(opt('timeout', '60'));
const jobs = Number(opt('jobs', '2'));
const filter = opt('filter', '');
const CLI = resolve('dist/cli/main.js');

type Verdict = 'clean error' | 'ran' | 'hang' | 'crash' | 'memory' | 'stack trace' | 'poor message' | 'silent';

interface Outcome { c: FuzzCase; verdict: Verdict; code: number | null; ms: number; peakMb: number; line: string }

function runOne(c: FuzzCase, work: string, n: number): Promise<Outcome> {
  const timeFile = join(work, `time-${n}`);
  const t0 = Date.now();
  return new Promise((done) => {
    // GNU time for the peak RSS; timeout(1) kills the CLI itself on a hang.
    const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%M', 'timeout', '-s', 'KILL', String(timeoutS), process.execPath, CLI, ...c.args], {
      env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: join(work, 'no-hub-cache') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { if (stdout.length < 1 << 20) stdout += d; });
    child.stderr.on('data', (d) => { if (stderr.length < 1 << 20) stderr += d; });
    child.stdin.on('error', () => {});
    child.stdin.end(c.input ?? '');
    child.on('close', (code) => {
      const ms = Date.now() - t0;
      let peakKb = 0;
      try {
        peakKb = Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop()) || 0;
      } catch { /* killed */ }
      const lines = stderr.split('\n').filter((l) => l !== '');
      const errorLines = lines.filter((l) => !l.startsWith('blip-itm: warning: '));
      let verdict: Verdict;
      if (code === 137 && ms >= timeoutS * 1000 - 500) verdict = 'hang';
      else if (code !== null && code > 128) verdict = 'crash';
      else if (peakKb > MEMORY_LIMIT_KB) verdict = 'memory';
      else if (/\n\s+at .+:\d+:\d+\)?$/m.test(stderr) || /internal error/.test(stderr)) verdict = 'stack trace';
      else if (code === 0) {
        verdict = c.expect === 'error' || /\bnull\b|NaN|Infinity/.test(stdout.replace(/"(?:[^"\\]|\\.)*"/g, '""')) ? 'silent' : 'ran';
      } else if ((code === 1 || code === 2) && errorLines.length === 1 && /^blip-itm: /.test(errorLines[0])) {
        verdict = c.expect === 'ok' ? 'poor message' : 'clean error';
      } else verdict = 'poor message';
      done({ c, verdict, code, ms, peakMb: peakKb / 1024, line: (errorLines[0] ?? '').slice(0, 220) });
    });
  });
}

/** Index cases need a real index: built once, then copied and damaged. */
async function indexCases(work: string): Promise<FuzzCase[]> {
  const base = join(work, 'base-index');
  const built = await runOne({ name: 'build', args: ['index', IMAGE, '--db', base, '--model', TINY], expect: 'ok' }, work, -1);
  if (built.verdict !== 'ran') throw new Error(`could not build the base index: ${built.line}`);
  const variant = (name: string, damage: (db: string) => void): FuzzCase => {
    const db = join(work, `idx-${name.replace(/\W+/g, '-')}`);
    cpSync(base, db, { recursive: true });
    damage(db);
    return { name: `index: ${name}`, args: ['search', '--db', db, '--text', 'a cat'], expect: 'error' };
  };
  const each = (db: string, table: string, sub: string, f: (file: string) => void) => {
    const d = join(db, `${table}.lance`, sub);
    for (const x of readdirSync(d)) f(join(d, x));
  };
  return [
    variant('images table deleted', (db) => rmSync(join(db, 'images.lance'), { recursive: true })),
    variant('images data deleted', (db) => each(db, 'images', 'data', (f) => rmSync(f))),
    variant('images data zeroed', (db) => each(db, 'images', 'data', (f) => writeFileSync(f, Buffer.alloc(100)))),
    variant('images versions deleted', (db) => rmSync(join(db, 'images.lance', '_versions'), { recursive: true })),
    variant('meta table deleted', (db) => rmSync(join(db, 'meta.lance'), { recursive: true })),
    variant('meta data zeroed', (db) => each(db, 'meta', 'data', (f) => writeFileSync(f, Buffer.alloc(100)))),
    { name: 'index: --db is a file', args: ['search', '--db', IMAGE, '--text', 'x'], expect: 'error' },
    { name: 'index: --db is /dev/null', args: ['search', '--db', '/dev/null', '--text', 'x'], expect: 'error' },
  ];
}

function imageCases(work: string): FuzzCase[] {
  const png = readFileSync(IMAGE);
  const bomb = Buffer.from(png);
  bomb.writeUInt32BE(100_000, 16); // IHDR width
  bomb.writeUInt32BE(100_000, 20); // IHDR height
  const files: Array<[string, Buffer | string, string]> = [
    ['truncated PNG', png.subarray(0, png.length >> 1), 'png'], ['PNG header only', png.subarray(0, 33), 'png'],
    ['100000x100000 PNG header (bomb)', bomb, 'png'], ['SVG', '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', 'svg'],
    ['text named .png', 'hello', 'png'], ['PDF', '%PDF-1.4\n', 'png'], ['JSON named .jpg', '{}', 'jpg'],
  ];
  return files.map(([name, bytes, ext], i) => {
    const f = join(work, `img${i}.${ext}`);
    writeFileSync(f, bytes);
    return { name: `image: ${name}`, args: ['score', '--model', TINY, '--image', f, '--text', 'x'], expect: 'error' as const };
  });
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'blip-itm-fuzz-'));
  try {
    let cases = [...generateCases(work), ...imageCases(work), ...(await indexCases(work))];
    if (filter) cases = cases.filter((c) => c.name.includes(filter));
    process.stderr.write(`${cases.length} cases, ${jobs} at a time, ${timeoutS} s each at most\n`);
    const outcomes: Outcome[] = [];
    let next = 0;
    const t0 = Date.now();
    await Promise.all(Array.from({ length: jobs }, async () => {
      while (next < cases.length) {
        const i = next++;
        const o = await runOne(cases[i], work, i);
        outcomes.push(o);
        if (process.stderr.isTTY) process.stderr.write(`\r${outcomes.length}/${cases.length}`);
      }
    }));
    if (process.stderr.isTTY) process.stderr.write('\n');
    const counts = new Map<Verdict, number>();
    for (const o of outcomes) counts.set(o.verdict, (counts.get(o.verdict) ?? 0) + 1);
    const order: Verdict[] = ['clean error', 'ran', 'hang', 'crash', 'memory', 'stack trace', 'poor message', 'silent'];
    console.log(`blip-itm fuzz: ${outcomes.length} runs in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    for (const v of order) console.log(`  ${v.padEnd(13)} ${counts.get(v) ?? 0}`);
    const peak = Math.max(...outcomes.map((o) => o.peakMb));
    const slowest = outcomes.reduce((a, b) => (b.ms > a.ms ? b : a));
    console.log(`  peak RSS ${peak.toFixed(0)} MB; slowest ${slowest.c.name} (${(slowest.ms / 1000).toFixed(1)} s)`);
    const bad = outcomes.filter((o) => o.verdict !== 'clean error' && o.verdict !== 'ran');
    for (const o of bad) console.log(`${o.verdict}: ${o.c.name} (exit ${o.code}, ${o.ms} ms, ${o.peakMb.toFixed(0)} MB): ${o.line}`);
    if (args.includes('--list')) for (const o of outcomes) console.log(`${o.verdict}\t${o.c.name}\t${o.line}`);
    process.exitCode = bad.length === 0 ? 0 : 1;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
