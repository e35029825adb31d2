import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ScoringEngine } from '../engine/scoring-engine.js';
import { BlipError, UsageError } from '../errors.js';
import { modelBackend, type ModelBackend } from '../filter/backend.js';
import { openDuckDb } from '../filter/duckdb.js';
import { discoverInputs, parseInputFormat } from '../filter/inputs.js';
import { type Manifest, manifestModel, readManifest } from '../filter/manifest.js';
import { DEFAULT_IMAGE_COL, DEFAULT_TEXT_COL, DEFAULT_THRESHOLD, DEFAULT_UNIT_ROWS, type OutputFormat, type ResultOptions } from '../filter/options.js';
import { openOutput } from '../filter/output-folder.js';
import { FilterProgress } from '../filter/progress.js';
import { enqueueUnits, parseQueueUrl, queueNameFor } from '../filter/queue.js';
import { runLocal } from '../filter/run-local.js';
import { DEFAULT_LOCK_MS, runWorker } from '../filter/worker.js';
import { oneLine } from '../io/files.js';
import { lazyModel } from '../retrieval/model-identity.js';
import { HELP, MODEL_OPTIONS, parseItmTextStart, runtimeOptions, usageErrors } from './args.js';
import { parseCount } from './index-command.js';
import type { Reporter } from './output.js';

export const FILTER_HELP = `Usage: blip-itm filter --input <file|glob>... --output <dir> [options]

BLIP's CapFilt filter: scores every (image, caption) row with ITM and ITC and keeps the rows whose
match probability is at least --threshold. Writes <output>/part-<unit>.parquet (or .jsonl): every
input column plus itm_probability, itm_logits, cosine, keep and error, and <output>/manifest.json.
A rerun resumes: complete units are skipped, interrupted ones redone.

Input:
      --input <file|glob>   input file(s); repeatable; globs: * ? [..] **
      --input-format <f>    jsonl | csv | parquet | webdataset (default: from the extension:
                            .jsonl/.ndjson, .csv, .parquet, .tar)
      --image-col <name>    image column: a path, or image bytes (default: ${DEFAULT_IMAGE_COL}); for
                            WebDataset, the image member's extension (default: jpg, jpeg, png, webp)
      --image-root <dir>    folder the image paths are relative to (paths may not leave it)
      --text-col <name>     caption column (default: ${DEFAULT_TEXT_COL}; WebDataset: .txt, else this
                            key of the .json member)
      --id-col <name>       id column (default: the 0-based row number, written as __row__;
                            WebDataset: __key__)
Filter:
      --threshold <p>       keep when the ITM match probability >= p (default: ${DEFAULT_THRESHOLD}, the paper's)
      --min-cosine <c>      and, when given, the ITC cosine >= c
      --pre-caption         clean captions with BLIP's pre_caption first (lower case, punctuation
                            removed, 30 words), as the original filter
${HELP.itmTextStart}
Output:
      --output <dir>        output folder (created)
      --format <f>          parquet (default) | jsonl
      --unit-rows <n>       rows per unit of work and part file (default: ${DEFAULT_UNIT_ROWS}); a shard is a unit
      --overwrite           replace an output made with other options, model or inputs
Scale-out (BullMQ on Redis):
      --queue <url>         redis://host:port[/db]: plan the units into the output's queue and work
                            on it (other machines join with "blip-itm filter-worker")
      --enqueue-only        with --queue: plan, then exit
      --wait                with --queue: keep waiting for more units when the queue is drained
      --lock-ms <ms>        with --queue: a dead worker's unit is retried after about this long
                            (default: ${DEFAULT_LOCK_MS})
Model:
${HELP.model}
${HELP.revision}
${HELP.runtime}
      --json                print one JSON summary object
${HELP.verbose}

Images are local files or bytes in the table: no URL is fetched (download with img2dataset first).
Exit codes: 0 done (bad rows carry an error and keep=false), 1 runtime error, 2 usage error.
`;

export function parseProbability(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} must be a number from ${min} to ${max}, got "${value}"`);
  return n;
}

export function parseOutputFormat(value: string): OutputFormat {
  if (value !== 'parquet' && value !== 'jsonl') throw new UsageError(`--format must be parquet or jsonl, got "${value}"`);
  return value;
}

export async function parseImageRoot(value: string | undefined): Promise<string | null> {
  if (value === undefined) return null;
  if (value.trim() === '') throw new UsageError('--image-root must not be empty');
  const root = resolve(value);
  let isDir = false;
  try {
    isDir = (await stat(root)).isDirectory();
  } catch {
    throw new BlipError(`--image-root ${oneLine(value)}: folder not found`, { subject: value });
  }
  if (!isDir) throw new BlipError(`--image-root ${oneLine(value)}: not a folder`, { subject: value });
  return root;
}

export function parseLockMs(value: string | undefined): number {
  return parseCount('lock-ms', value, 100) ?? DEFAULT_LOCK_MS;
}

/** The model backend of the CLI: the checkpoint identified now, loaded and wrapped in the scoring engine on first use. */
export async function cliBackend(modelId: string, values: { revision?: string; device: string; threads?: string }, reporter: Reporter): Promise<ModelBackend> {
  reporter.status(`resolving ${modelId} ...`);
  const lazy = await lazyModel(modelId, { revision: values.revision, ...runtimeOptions(values) });
  return modelBackend(lazy, (model, options) => new ScoringEngine(model, options));
}

export function summaryOf(manifest: Manifest, extra: Record<string, unknown>): Record<string, unknown> {
  const t = manifest.totals;
  return {
    model: manifest.model.model,
    fingerprint: manifest.model.fingerprint,
    units: t.units,
    units_done: t.unitsDone,
    rows: t.rows,
    kept: t.kept,
    errors: t.errors,
    ...extra,
  };
}

export function describeTotals(output: string, manifest: Manifest): string {
  const t = manifest.totals;
  const pct = t.rows > 0 ? ` (${((100 * t.kept) / t.rows).toFixed(1)}%)` : '';
  return `${output}: ${t.rows} rows in ${t.unitsDone}/${t.units} units, kept ${t.kept}${pct}, ${t.errors} error${t.errors === 1 ? '' : 's'}`;
}

/** Redraws at most a few times a second: a status line per pair would cost more than the pair. */
export function throttled(reporter: Reporter): (line: () => string) => void {
  let last = 0;
  return (line) => {
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    reporter.status(line());
  };
}

export async function filterCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values } = usageErrors('filter', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...MODEL_OPTIONS,
    input: { type: 'string', multiple: true, default: [] },
    output: { type: 'string' },
    'input-format': { type: 'string' },
    'image-col': { type: 'string', default: DEFAULT_IMAGE_COL },
    'image-root': { type: 'string' },
    'text-col': { type: 'string', default: DEFAULT_TEXT_COL },
    'id-col': { type: 'string' },
    threshold: { type: 'string', default: String(DEFAULT_THRESHOLD) },
    'min-cosine': { type: 'string' },
    format: { type: 'string', default: 'parquet' },
    'unit-rows': { type: 'string' },
    'itm-text-start': { type: 'string', default: 'cls' },
    'pre-caption': { type: 'boolean', default: false },
    overwrite: { type: 'boolean', default: false },
    queue: { type: 'string' },
    'enqueue-only': { type: 'boolean', default: false },
    wait: { type: 'boolean', default: false },
    'lock-ms': { type: 'string' },
  } }));
  if (values.help) return FILTER_HELP;
  if (values.input.length === 0) throw new UsageError('filter: give --input <file|glob> (see: blip-itm filter --help)');
  if (values.output === undefined || values.output.trim() === '') throw new UsageError('filter: give --output <dir> (see: blip-itm filter --help)');
  if ((values['enqueue-only'] || values.wait) && values.queue === undefined) throw new UsageError(`--${values['enqueue-only'] ? 'enqueue-only' : 'wait'} needs --queue`);
  for (const name of ['image-col', 'text-col', 'id-col'] as const) {
    if (values[name] !== undefined && values[name].trim() === '') throw new UsageError(`--${name} must not be empty`);
  }
  const location = values.queue === undefined ? undefined : parseQueueUrl(values.queue);
  const lockMs = parseLockMs(values['lock-ms']);
  runtimeOptions(values);
  const output = resolve(values.output);
  const { files, format: inputFormat } = await discoverInputs(values.input, values['input-format'] === undefined ? undefined : parseInputFormat(values['input-format']));
  if (inputFormat === 'webdataset' && values['id-col'] !== undefined) throw new UsageError('--id-col does not apply to WebDataset input: rows are identified by __key__');
  const options: ResultOptions = {
    inputFormat,
    imageCol: values['image-col'],
    textCol: values['text-col'],
    idCol: values['id-col'] ?? null,
    imageRoot: await parseImageRoot(values['image-root']),
    threshold: parseProbability('threshold', values.threshold, 0, 1),
    minCosine: values['min-cosine'] === undefined ? null : parseProbability('min-cosine', values['min-cosine'], -1, 1),
    format: parseOutputFormat(values.format),
    unitRows: parseCount('unit-rows', values['unit-rows'], 1) ?? DEFAULT_UNIT_ROWS,
    itmTextStart: parseItmTextStart(values['itm-text-start']),
    preCaption: values['pre-caption'],
  };

  const backend = await cliBackend(values.model, values, reporter);
  const model = manifestModel(backend.identity);
  const draw = throttled(reporter);
  try {
    if (location === undefined) {
      const summary = await runLocal({
        output, inputs: files, options, model, overwrite: values.overwrite,
        engine: () => { reporter.status(`loading ${values.model} ...`); return backend.engine(options.itmTextStart); },
        onProgress: (p) => draw(() => p.line()),
      });
      reporter.done();
      const rate = summary.pairsRun / Math.max(summary.seconds, 1e-9);
      if (values.json) {
        return JSON.stringify(summaryOf(summary.manifest, {
          output, units_run: summary.unitsRun, units_skipped: summary.unitsSkipped, pairs_run: summary.pairsRun,
          seconds: Number(summary.seconds.toFixed(3)), pairs_per_second: Number(rate.toFixed(3)), resumed: summary.resumed,
        }));
      }
      return `${describeTotals(output, summary.manifest)}; ${summary.unitsRun} unit(s) run, ${summary.unitsSkipped} already done${summary.pairsRun > 0 ? `, ${rate.toFixed(1)} pairs/s` : ''}`;
    }

    reporter.status('planning units ...');
    const db = await openDuckDb();
    let planned;
    try {
      planned = await openOutput(db.connection, output, { model, options, inputs: files, overwrite: values.overwrite });
    } finally {
      db.close();
    }
    const enqueued = await enqueueUnits(location, { output, model, options, todo: planned.todo });
    const plan = { queue: enqueued.queue, added: enqueued.added, retried: enqueued.retried, already_queued: enqueued.queued };
    if (values['enqueue-only']) {
      reporter.done();
      if (values.json) return JSON.stringify(summaryOf(planned.manifest, { output, ...plan }));
      return `${output}: ${planned.todo.length} of ${planned.manifest.totals.units} unit(s) to do; queue ${enqueued.queue} on ${location.url}: ${enqueued.added} added, ${enqueued.retried} retried, ${enqueued.queued} already queued`;
    }
    const progress = new FilterProgress(options, null);
    const worked = await runWorker({
      location, output, wait: values.wait, lockMs, identity: backend.identity,
      backend: async () => backend,
      onProgress: (o) => { progress.add(o); draw(() => progress.line()); },
      onLog: (line) => { reporter.done(); process.stderr.write(`blip-itm: ${line}\n`); },
    });
    reporter.done();
    if (worked.refused.length > 0 && worked.units === 0) throw new BlipError(`refused: ${worked.refused[0]}`);
    const manifest = (await readManifest(output)) ?? planned.manifest;
    if (values.json) return JSON.stringify(summaryOf(manifest, { output, ...plan, units_run: worked.units, pairs_run: worked.pairs, seconds: Number(progress.seconds.toFixed(3)) }));
    return `${describeTotals(output, manifest)}; this process ran ${worked.units} unit(s) from queue ${queueNameFor(output)}`;
  } finally {
    await backend.close();
  }
}
