import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';

/** Helpers for the bad-input tests: a CLI runner that measures time and peak memory, and bad checkpoints. */

export const TINY = 'test/fixtures/models/tiny';
export const IMAGE = 'test/fixtures/images/coco_000000039769.png';
export const SMALL_IMAGE = 'test/fixtures/images/syn_1x1.png';

export interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Peak resident memory of the CLI process in MB (GNU time), or undefined where unavailable. */
  peakMb?: number;
}

export function cli(args: string[], options: { input?: string; timeoutMs?: number } = {}): CliRun {
  const timeFile = join(tmpdir(), `blip-itm-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const command = [process.execPath, '--import', 'tsx', 'src/cli/main.ts', ...args];
  // Linux: GNU time measures the peak RSS and timeout(1) kills the CLI itself on a hang (killing
  // time alone would leave the CLI running).
  const useTime = process.platform === 'linux';
  const wrapped = useTime ? ['-o', timeFile, '-f', '%M', 'timeout', '-s', 'KILL', String(Math.ceil(timeoutMs / 1000)), ...command] : command.slice(1);
  const t0 = Date.now();
  const r = spawnSync(useTime ? '/usr/bin/time' : command[0], wrapped, {
    encoding: 'utf8',
    input: options.input,
    timeout: timeoutMs + 5_000,
    killSignal: 'SIGKILL',
    maxBuffer: 64 << 20,
    env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: 'test/fixtures/__no_cache__' },
  });
  const ms = Date.now() - t0;
  let peakMb: number | undefined;
  try {
    const kb = Number(readFileSync(timeFile, 'utf8').trim().split('\n').pop());
    if (Number.isFinite(kb)) peakMb = kb / 1024;
  } catch {
    // killed before time wrote it, or not Linux
  } finally {
    rmSync(timeFile, { force: true });
  }
  // Under time and timeout, a child killed by signal N shows as exit 128 + N (137: timeout's SIGKILL).
  if (useTime && r.status !== null && r.status > 128) {
    return { status: null, signal: (r.status === 139 ? 'SIGSEGV' : r.status === 134 ? 'SIGABRT' : 'SIGKILL'), stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms, peakMb };
  }
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms, peakMb };
}

/** A clean error: the exit code, exactly one stderr line starting "blip-itm: ", no stack trace, bounded time and memory. */
export function assertCleanError(r: CliRun, code: 1 | 2, pattern: RegExp, limits: { ms?: number; mb?: number } = {}): void {
  assert.equal(r.signal, null, `killed by ${r.signal} after ${r.ms} ms (hang?)\n${r.stderr}`);
  assert.equal(r.status, code, `exit ${r.status}, expected ${code}; stderr:\n${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0], /^blip-itm: /);
  assert.doesNotMatch(lines[0], /internal error/);
  assert.match(lines[0], pattern);
  assert.equal(r.stdout, '', 'nothing on stdout');
  assert.ok(r.ms < (limits.ms ?? 20_000), `took ${r.ms} ms`);
  if (r.peakMb !== undefined) assert.ok(r.peakMb < (limits.mb ?? 1024), `peak RSS ${r.peakMb.toFixed(0)} MB`);
}

export function tempDir(prefix = 'blip-itm-bad-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A copy of the tiny model (safetensors weights only) under `parent`, with `edit` applied to named files. */
export function tinyCopy(parent: string, name: string, edits: Record<string, string | Buffer | null> = {}): string {
  const dir = join(parent, name);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(TINY)) {
    if (f === 'pytorch_model.bin' || f in edits) continue;
    copyFileSync(join(TINY, f), join(dir, f));
  }
  for (const [f, content] of Object.entries(edits)) if (content !== null) writeFileSync(join(dir, f), content);
  return dir;
}

/** The tiny config.json with `patch` applied to its parsed object. */
export function tinyConfig(patch: (c: Record<string, any>) => void): string {
  const c = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8'));
  patch(c);
  return JSON.stringify(c);
}

/** The tiny model.safetensors with element 0 of `tensor` (float32) set to `value`. */
export async function tinyWeightsWith(tensor: string, value: number): Promise<Buffer> {
  const file = join(TINY, 'model.safetensors');
  const bytes = readFileSync(file);
  const info = (await readSafetensors(file)).tensors.get(tensor);
  assert.ok(info && info.dtype === 'F32', `${tensor} is an F32 tensor of the fixture`);
  bytes.writeFloatLE(value, info.offset);
  return bytes;
}
