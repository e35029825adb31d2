import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { DEFAULT_INDEX_BATCH_SIZE, type IndexProgress, type IndexSummary, indexImages } from '../retrieval/build-index.js';
import { collectImages, IMAGE_EXTENSIONS } from '../retrieval/collect-images.js';
import { DEFAULT_INDEX_DIR, ImageIndex } from '../retrieval/image-index.js';
import { describeIdentity, lazyModel } from '../retrieval/model-identity.js';
import type { Dtype } from '../checkpoint/dtype.js';
import { DEFAULT_MODEL, HELP, MODEL_OPTIONS, prepareDevice, runtimeOptions, usageErrors } from './args.js';
import type { Reporter } from './output.js';

export const INDEX_HELP = `Usage: blip-itm index <folder|list-file> [--db <path>] [options]

Encodes every image under a folder (recursively: ${IMAGE_EXTENSIONS.join(' ')}),
or every path of a list file (one per line, relative to the list file's folder; # comments), and
stores its ITC feature, path, size, modification time and sha256 in an embedded LanceDB database.

Runs again are incremental: unchanged files (same size and mtime, or same content) are skipped,
changed ones encoded again, and stored images that are gone are removed (for a folder: those under
it; for a list file: those not listed). Rows are committed every --batch-size images, so an
interrupted run resumes where it stopped. Images that cannot be read are listed and skipped.

Options:
      --db <path>           index folder (default: ./${DEFAULT_INDEX_DIR})
  -m, --model <id|folder>   model; default: the one the index was built with, else ${DEFAULT_MODEL}
${HELP.revision}
      --rebuild             drop what the index holds and start over (needed to change models)
      --batch-size <n>      images decoded and committed together (default: ${DEFAULT_INDEX_BATCH_SIZE})
${HELP.runtime}
      --json                print one JSON object instead of a summary
${HELP.verbose}

Exit codes: 0 done (also when some images could not be read: they are listed under "failed"),
1 runtime error, 2 usage error.
`;

/** An option's integer value, or undefined when absent; usage error otherwise. */
export function parseCount(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d{1,15}$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min} (decimal digits), got ${JSON.stringify(value)}`);
  }
  return n;
}

/** The model id (and revision) an existing index was built with, or undefined. */
export async function indexModel(db: string): Promise<{ model: string; revision?: string; dtype?: Dtype } | undefined> {
  let index: ImageIndex;
  try {
    index = await ImageIndex.open(db);
  } catch {
    return undefined;
  }
  try {
    return { model: index.meta.model.model, revision: index.meta.model.revision, dtype: index.meta.model.dtype };
  } finally {
    index.close();
  }
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** `[#####-----] 37/120  3.2 images/s  ETA 0:26` */
export function formatIndexProgress(p: IndexProgress, width = 20): string {
  const filled = p.total > 0 ? Math.round((p.done / p.total) * width) : width;
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const rate = p.done > 0 ? `${p.rate >= 10 ? p.rate.toFixed(0) : p.rate.toFixed(1)} images/s` : '';
  const eta = p.etaSeconds !== undefined ? `ETA ${clock(p.etaSeconds)}` : '';
  const failed = p.failed > 0 ? `${p.failed} failed` : '';
  return ['indexing', bar, `${p.done}/${p.total}`, rate, eta, failed].filter(Boolean).join('  ');
}

export function summaryJson(s: IndexSummary): Record<string, unknown> {
  return {
    db: s.db,
    model: s.model.model,
    model_identity: s.model,
    added: s.added,
    updated: s.updated,
    removed: s.removed,
    unchanged: s.unchanged,
    failed: s.failed.length,
    failures: s.failed,
    encoded: s.encoded,
    total: s.total,
    seconds: Number(s.seconds.toFixed(3)),
  };
}

export async function indexCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values, positionals } = usageErrors('index', () => parseArgs({ args: argv, allowPositionals: true, strict: true, options: {
    ...MODEL_OPTIONS,
    model: { type: 'string', short: 'm' },
    db: { type: 'string', default: DEFAULT_INDEX_DIR },
    rebuild: { type: 'boolean', default: false },
    'batch-size': { type: 'string' },
  } }));
  if (values.help) return INDEX_HELP;
  if (positionals.length !== 1) {
    throw new UsageError(`index: give exactly one folder or list file${positionals.length > 1 ? ` (got ${positionals.length}: ${positionals.join(' ')})` : ''} (see: blip-itm index --help)`);
  }
  const batchSize = parseCount('batch-size', values['batch-size'], 1) ?? DEFAULT_INDEX_BATCH_SIZE;
  const runtime = runtimeOptions(values);
  await prepareDevice(runtime);
  if (values.db.trim() === '') throw new UsageError('--db must not be empty');

  reporter.status('finding images ...');
  const collected = await collectImages(positionals[0]);
  const stored = values.model === undefined || values.dtype === undefined ? await indexModel(values.db) : undefined;
  const modelId = values.model ?? stored?.model ?? DEFAULT_MODEL;
  const revision = values.model === undefined && values.revision === undefined ? stored?.revision : values.revision;
  reporter.status(`resolving ${modelId} ...`);
  // The vision encoder keeps the model's own batch size (1: no slower per image on CPU, far less
  // memory); --batch-size only sets how many images are decoded and committed together.
  const dtype = values.dtype === undefined ? stored?.dtype ?? 'fp32' : runtime.dtype;
  const model = await lazyModel(modelId, { revision, ...runtime, dtype });
  const summary = await indexImages(collected, {
    db: values.db,
    model,
    batchSize,
    rebuild: values.rebuild,
    onStatus: (text) => reporter.status(text),
    onProgress: (p) => reporter.status(formatIndexProgress(p)),
  });
  reporter.done();
  if (values.json) return JSON.stringify(summaryJson(summary));
  const lines = [
    `${summary.db}: ${summary.total} image(s), model ${describeIdentity(summary.model)}`,
    `added ${summary.added}, updated ${summary.updated}, removed ${summary.removed}, unchanged ${summary.unchanged}, failed ${summary.failed.length} (${summary.seconds.toFixed(1)} s)`,
  ];
  if (summary.failed.length > 0) {
    lines.push('failed:');
    for (const f of summary.failed) lines.push(`  ${f.path}: ${f.error}`);
  }
  return lines.join('\n');
}
