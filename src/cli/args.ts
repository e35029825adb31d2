import type { ParseArgsConfig } from 'node:util';
import { access, constants } from 'node:fs/promises';
import { ImageError, UsageError } from '../errors.js';

export const DEFAULT_MODEL = 'Salesforce/blip-itm-large-coco';

/** Options every model-loading command accepts. */
export const MODEL_OPTIONS = {
  model: { type: 'string', short: 'm', default: DEFAULT_MODEL },
  revision: { type: 'string' },
  device: { type: 'string', default: 'cpu' },
  threads: { type: 'string' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

/** Runs a node:util parseArgs call, turning its errors into usage errors that name the command. */
export function usageErrors<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError(`${command}: ${(e as Error).message} (see: blip-itm ${command} --help)`);
  }
}

export function parseThreads(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1024) throw new UsageError(`--threads must be a positive integer, got "${value}"`);
  return n;
}

export function parseDevice(value: string): 'cpu' | 'cuda' {
  if (value !== 'cpu' && value !== 'cuda') throw new UsageError(`--device must be "cpu" or "cuda", got "${value}"`);
  return value;
}

export function parseItmTextStart(value: string): 'cls' | 'enc' {
  if (value !== 'cls' && value !== 'enc') throw new UsageError(`--itm-text-start must be "cls" or "enc", got "${value}"`);
  return value;
}

/** --device and --threads as fromPretrained options. */
export function runtimeOptions(values: { device: string; threads?: string }): { executionProvider: 'cpu' | 'cuda'; intraOpThreads?: number } {
  return { executionProvider: parseDevice(values.device), intraOpThreads: parseThreads(values.threads) };
}

/** Fails on a mistyped image path before any time is spent on loading the model. */
export async function assertReadableImages(paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    try {
      await access(path, constants.R_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ImageError(path, code === 'ENOENT' ? 'image file not found' : `cannot read image file (${code})`);
    }
  }
}

/** Help lines of the options several commands share, so their --help texts stay in step. */
export const HELP = {
  model: `  -m, --model <id|folder>   Hub repo id or local checkpoint folder (default: ${DEFAULT_MODEL})`,
  revision: '      --revision <rev>      Hub revision: branch, tag, commit or refs/pr/N',
  itmTextStart: '      --itm-text-start <s>  "cls" (transformers, default) or "enc" (original BLIP/LAVIS)',
  runtime: '      --device <cpu|cuda>   execution provider (default: cpu)\n      --threads <n>         threads per operator',
  json: '      --json                print one JSON object instead of a table',
  verbose: '      --verbose             show stack traces on errors',
} as const;
