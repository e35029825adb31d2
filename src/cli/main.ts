#!/usr/bin/env node
import { BlipError, UsageError } from '../errors.js';
import { evalCommand } from './eval.js';
import { filterCommand } from './filter.js';
import { filterStatusCommand } from './filter-status.js';
import { filterWorkerCommand } from './filter-worker.js';
import { indexCommand } from './index-command.js';
import { terminalReporter } from './output.js';
import { rankCommand } from './rank.js';
import { scoreCommand } from './score.js';
import { searchCommand } from './search.js';
import { serveCommand } from './serve.js';
import { tokenizeCommand } from './tokenize.js';

const USAGE = `Usage: blip-itm <command> [options]

Commands:
  score          score images against captions (ITM probability and ITC cosine)
  tokenize       show the token ids of captions
  rank           rank captions for one image (ITC cosine, ITM rerank of the best)
  eval           BLIP's retrieval evaluation (recall@1/5/10) on a Karpathy-format split
  index          encode a folder of images into a persistent image index (incremental)
  search         search the image index by text (ITC, then ITM rerank) or by image
  filter         BLIP's CapFilt filter over a dataset (JSONL/CSV/Parquet/WebDataset → Parquet)
  filter-worker  work on filter units queued in Redis (scale-out)
  filter-status  progress of the queued filter runs
  serve          HTTP service: score, rank and embed over a shared batching engine, and a web page

Run "blip-itm <command> --help" for a command's options.
`;

const COMMANDS: Record<string, (argv: string[], reporter: ReturnType<typeof terminalReporter>) => Promise<string>> = {
  score: scoreCommand,
  tokenize: tokenizeCommand,
  rank: rankCommand,
  eval: evalCommand,
  index: indexCommand,
  search: searchCommand,
  filter: filterCommand,
  'filter-worker': filterWorkerCommand,
  'filter-status': filterStatusCommand,
  serve: serveCommand,
};

/**
 * An error message as one line, whatever it quotes: a newline in a file name or a caption is
 * shown escaped (\n), so stderr carries exactly one line per error.
 */
export function singleLine(message: string): string {
  const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
  const line = message
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, (c) => named[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .trim();
  // A 40,000-character path would bury the problem; keep both ends, where it is said.
  return line.length <= MAX_MESSAGE ? line : `${line.slice(0, MAX_MESSAGE / 2)} … ${line.slice(-MAX_MESSAGE / 2)}`;
}

const MAX_MESSAGE = 1000;

/** Runs the CLI; returns the exit code: 0 success, 1 runtime error, 2 usage error. */
export async function main(argv: string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  const reporter = terminalReporter();
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    }
    const run = COMMANDS[command];
    if (!run) throw new UsageError(`unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')})`);
    const output = await run(rest, reporter);
    // serve prints its log lines as it goes and returns nothing once stopped.
    if (output !== '') process.stdout.write(output.endsWith('\n') ? output : `${output}\n`);
    return 0;
  } catch (e) {
    reporter.done();
    if (e instanceof UsageError) {
      process.stderr.write(`blip-itm: ${singleLine(e.message)}\n`);
      return 2;
    }
    if (e instanceof BlipError) {
      process.stderr.write(`blip-itm: ${singleLine(e.message)}\n`);
      if (verbose) process.stderr.write(`${e.stack ?? ''}\n`);
      return 1;
    }
    process.stderr.write(`blip-itm: internal error: ${singleLine((e as Error)?.message ?? String(e))}${verbose ? '' : ' (run with --verbose for details)'}\n`);
    if (verbose) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    return 1;
  }
}

// Library warnings (e.g. a caption truncated to 512 tokens) as one plain line, like our errors,
// instead of Node's "(node:PID) Warning: ..." format.
process.removeAllListeners('warning');
process.on('warning', (w) => process.stderr.write(`blip-itm: warning: ${singleLine(w.message)}\n`));
// `blip-itm score ... | head` closes stdout early: that is the reader's choice, not an error to trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await main(process.argv.slice(2));
