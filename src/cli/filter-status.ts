import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { parseQueueUrl } from '../filter/queue.js';
import { filterStatus, formatStatus } from '../filter/status.js';
import { usageErrors } from './args.js';

export const FILTER_STATUS_HELP = `Usage: blip-itm filter-status --queue redis://host:port[/db] [--output <dir>] [--json]

Prints the progress of the filter runs planned into this Redis: units completed, active, waiting
and failed in each queue, and the manifest's rows, kept and errors where the output folder is
readable from here.
`;

export async function filterStatusCommand(argv: string[]): Promise<string> {
  const { values } = usageErrors('filter-status', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    queue: { type: 'string' },
    output: { type: 'string' },
    json: { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  } }));
  if (values.help) return FILTER_STATUS_HELP;
  if (values.queue === undefined) throw new UsageError('filter-status: give --queue redis://host:port[/db]');
  const statuses = await filterStatus(parseQueueUrl(values.queue), values.output);
  if (values.json) return JSON.stringify({ queues: statuses });
  if (statuses.length === 0) return `no filter runs planned into ${values.queue}${values.output ? ` for ${values.output}` : ''}`;
  return statuses.map(formatStatus).join('\n');
}
