import { parseArgs } from 'node:util';
import { BlipError, UsageError } from '../errors.js';
import type { ModelBackend } from '../filter/backend.js';
import { FilterProgress } from '../filter/progress.js';
import { parseQueueUrl } from '../filter/queue.js';
import { DEFAULT_LOCK_MS, runWorker } from '../filter/worker.js';
import { HELP, MODEL_OPTIONS, runtimeOptions, usageErrors } from './args.js';
import { cliBackend, parseLockMs, throttled } from './filter.js';
import type { Reporter } from './output.js';

export const FILTER_WORKER_HELP = `Usage: blip-itm filter-worker --queue redis://host:port[/db] [options]

Works on the units "blip-itm filter --queue" planned: scores each and writes its part into the
run's output folder (which every worker must see at the same path, e.g. over NFS), then exits
when the queues are drained. A worker that dies mid-unit loses nothing: its unit goes back to the
queue (BullMQ's stalled-job check) and another worker redoes it; parts are committed atomically.

Options:
      --queue <url>         the Redis the runs were planned into
      --output <dir>        work only on this output's queue (default: every planned run's)
  -m, --model <id|folder>   the model to score with (default: the one each job names); a job
                            planned with another model (by weights fingerprint) is refused
${HELP.revision}
      --wait                keep waiting for new units when the queues are drained
      --lock-ms <ms>        a dead worker's unit is retried after about this long (default: ${DEFAULT_LOCK_MS})
${HELP.runtime}
      --json                print one JSON summary object
${HELP.verbose}
`;

export async function filterWorkerCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values } = usageErrors('filter-worker', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...MODEL_OPTIONS,
    model: { type: 'string', short: 'm' },
    queue: { type: 'string' },
    output: { type: 'string' },
    wait: { type: 'boolean', default: false },
    'lock-ms': { type: 'string' },
  } }));
  if (values.help) return FILTER_WORKER_HELP;
  if (values.queue === undefined) throw new UsageError('filter-worker: give --queue redis://host:port[/db] (see: blip-itm filter-worker --help)');
  const location = parseQueueUrl(values.queue);
  const lockMs = parseLockMs(values['lock-ms']);
  runtimeOptions(values);
  const own = values.model === undefined ? undefined : await cliBackend(values.model, values, reporter);
  const progress = new FilterProgress({ threshold: 0.5, minCosine: null }, null);
  const draw = throttled(reporter);
  const summary = await runWorker({
    location, output: values.output, wait: values.wait, lockMs, identity: own?.identity,
    backend: (jobModel): Promise<ModelBackend> => own ? Promise.resolve(own) : cliBackend(jobModel, values, reporter),
    onProgress: (o) => { progress.add(o); draw(() => `${progress.line().replace(/ {2}kept.*$/, '')}`); },
    onLog: (line) => { if (!line.startsWith('refused: ')) { reporter.done(); process.stderr.write(`blip-itm: ${line}\n`); } },
  });
  reporter.done();
  await own?.close();
  if (summary.refused.length > 0 && summary.units === 0) throw new BlipError(`filter-worker refused: ${summary.refused[0]}`);
  if (values.json) return JSON.stringify({ units: summary.units, pairs: summary.pairs, refused: summary.refused, seconds: Number(progress.seconds.toFixed(3)) });
  return `filter-worker: ${summary.units} unit(s), ${summary.pairs} pair(s) in ${progress.seconds.toFixed(1)} s${summary.refused.length > 0 ? `; refused ${summary.refused.length} queue(s)` : ''}`;
}
