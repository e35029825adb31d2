import type { ParseArgsConfig } from 'node:util';
import { access, constants } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { type Dtype, parseDtype as parseDtypeValue } from '../checkpoint/dtype.js';
import { BlipError, ImageError, UsageError } from '../errors.js';
import { decodePlainText, FileError, FILE_LIMITS, formatBytes, oneLine, statRegularFile } from '../io/files.js';
import { probeWebGpu, quietWayland } from '../runtime/webgpu-probe.js';

export const DEFAULT_MODEL = 'Salesforce/blip-itm-large-coco';

/** Options every model-loading command accepts. */
export const MODEL_OPTIONS = {
  model: { type: 'string', short: 'm', default: DEFAULT_MODEL },
  revision: { type: 'string' },
  device: { type: 'string', default: 'cpu' },
  threads: { type: 'string' },
  // No default here: index and search fall back to the index's own dtype.
  dtype: { type: 'string' },
  json: { type: 'boolean', default: false },
  verbose: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

/** Runs a node:util parseArgs call, turning its errors into usage errors that name the command. */
export function usageErrors<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    // Node's messages run over several lines; the first says what is wrong.
    const message = (e as Error).message;
    const ambiguous = /^Option '(--[\w-]+)(?: <value>)?' argument is ambiguous/.exec(message);
    const first = ambiguous
      ? `${ambiguous[1]} needs a value; one starting with "-" must be written ${ambiguous[1]}=<value>`
      : message.split('\n')[0].trim();
    throw new UsageError(`${command}: ${first} (see: blip-itm ${command} --help)`);
  }
}

/** More threads than this many per CPU only slow onnxruntime down (1024 on 2 cores: 25x slower). */
export const MAX_THREADS_PER_CPU = 4;

/**
 * --threads: a decimal integer >= 1 (not "0x10", " 4" or "1e3", which Number() would take), capped
 * at {@link MAX_THREADS_PER_CPU} per available CPU with a warning.
 */
export function parseThreads(value: string | undefined, cpus: number = availableParallelism()): number | undefined {
  if (value === undefined) return undefined;
  const n = /^[0-9]{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1)) throw new UsageError(`--threads must be a positive integer (decimal digits), got ${JSON.stringify(value)}`);
  const cap = MAX_THREADS_PER_CPU * cpus;
  if (n > cap) {
    process.emitWarning(`--threads ${n} is more than ${MAX_THREADS_PER_CPU} per CPU (${cpus} available); using ${cap}`);
    return cap;
  }
  return n;
}

export function parseDevice(value: string): 'cpu' | 'cuda' | 'webgpu' {
  if (value !== 'cpu' && value !== 'cuda' && value !== 'webgpu') throw new UsageError(`--device must be "cpu", "cuda" or "webgpu", got "${value}"`);
  return value;
}

/** --dtype: fp32 (default), fp16, int8 or its alias q8; anything else is a usage error (exit 2). */
export function parseDtype(value: string | undefined): Dtype {
  return parseDtypeValue(value, '--dtype');
}

export function parseItmTextStart(value: string): 'cls' | 'enc' {
  if (value !== 'cls' && value !== 'enc') throw new UsageError(`--itm-text-start must be "cls" or "enc", got "${value}"`);
  return value;
}

/** --device, --threads and --dtype as fromPretrained options. */
export function runtimeOptions(values: { device: string; threads?: string; dtype?: string }): {
  executionProvider: 'cpu' | 'cuda' | 'webgpu'; intraOpThreads?: number; dtype: Dtype;
} {
  return { executionProvider: parseDevice(values.device), intraOpThreads: parseThreads(values.threads), dtype: parseDtype(values.dtype) };
}

/**
 * --device webgpu: checked in a child process before any model is loaded, so a missing adapter is
 * one line on stderr (not Dawn's and Vulkan's own diagnostics), and libwayland's warning is muted.
 */
export async function prepareDevice(runtime: { executionProvider: string; dtype: Dtype }): Promise<void> {
  if (runtime.executionProvider !== 'webgpu') return;
  quietWayland();
  await probeWebGpu(runtime.dtype);
}

/** Fails on a mistyped image path before any time is spent on loading the model. */
export async function assertReadableImages(paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    try {
      await statRegularFile(path, { maxBytes: FILE_LIMITS.image, what: 'an image file' });
      await access(path, constants.R_OK);
    } catch (e) {
      if (e instanceof FileError) throw new ImageError(oneLine(path), e.problem === 'file not found' ? 'image file not found' : e.problem);
      const code = (e as NodeJS.ErrnoException).code;
      throw new ImageError(oneLine(path), code === 'EACCES' ? 'permission denied' : `cannot read image file (${code})`);
    }
  }
}

/** Reads stdin as text under the cap of a list file: `cat /dev/zero | blip-itm ... -` must end. */
export async function readStdinText(what: string): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    total += (chunk as Buffer).length;
    if (total > FILE_LIMITS.textList) throw new BlipError(`stdin: more than the ${formatBytes(FILE_LIMITS.textList)} limit for ${what}`);
    chunks.push(chunk as Buffer);
  }
  return decodePlainText(Buffer.concat(chunks), 'stdin', what);
}

/** Help lines of the options several commands share, so their --help texts stay in step. */
export const HELP = {
  model: `  -m, --model <id|folder>   Hub repo id or local checkpoint folder (default: ${DEFAULT_MODEL})`,
  revision: '      --revision <rev>      Hub revision: branch, tag, commit or refs/pr/N',
  itmTextStart: '      --itm-text-start <s>  "cls" (transformers, default) or "enc" (original BLIP/LAVIS)',
  runtime: '      --device <d>          execution provider: cpu (default), cuda or webgpu\n      --threads <n>         threads per operator\n'
    + '      --dtype <t>           precision: fp32 (default), fp16, or int8 (alias q8); see README "Precision"',
  /** The --dtype line alone, for commands that print --device/--threads their own way. */
  dtype: '      --dtype <t>           precision: fp32 (default), fp16, or int8 (alias q8); see README "Precision"',
  json: '      --json                print one JSON object instead of a table',
  verbose: '      --verbose             show stack traces on errors',
} as const;
