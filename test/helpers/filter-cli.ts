import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { FIXTURES } from './goldens.js';

export const TINY = `${FIXTURES}/models/tiny`;

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * The real CLI in a child process (`node --import tsx src/cli/main.ts ...`); `nodeArgs` go before
 * the script (preloads, V8 flags), `ipc` opens a message channel to it.
 */
export function spawnCli(args: string[], options: { nodeArgs?: string[]; ipc?: boolean } = {}): { child: ChildProcess; done: Promise<Finished> } {
  const child = spawn(process.execPath, ['--import', 'tsx', ...(options.nodeArgs ?? []), 'src/cli/main.ts', ...args], {
    env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_CACHE: `${FIXTURES}/__no_cache__` },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => { stdout += d; });
  child.stderr!.on('data', (d) => { stderr += d; });
  const done = new Promise<Finished>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check` holds, polling; fails after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000, pollMs = 50): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

export function partCount(output: string): number {
  try {
    return readdirSync(output).filter((n) => /^part-\d+\./.test(n)).length;
  } catch {
    return 0;
  }
}
