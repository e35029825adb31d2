import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { readPlainTextFile } from '../io/files.js';
import { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import { DEFAULT_RERANK, rankCaptions } from '../retrieval/rank-captions.js';
import { assertReadableImages, HELP, MODEL_OPTIONS, parseItmTextStart, prepareDevice, readStdinText, runtimeOptions, usageErrors } from './args.js';
import { formatTable, type Reporter } from './output.js';

export const RANK_HELP = `Usage: blip-itm rank --image <path> --texts <file|-> [options]

Ranks captions (one per line; "-" reads them from stdin) for one image. Every caption gets the ITC
cosine; the best --rerank K of them by cosine also get the ITM match probability. Output: the
reranked captions by ITM probability, then the others by cosine.

Options:
${HELP.model}
${HELP.revision}
  -i, --image <path>        the image
      --texts <file|->      captions, one per line (empty lines are skipped)
      --top <n>             print only the first n (default: all)
      --rerank <k>          captions rescored with ITM (default: all up to ${DEFAULT_RERANK}, else ${DEFAULT_RERANK}; 0: cosine only)
${HELP.itmTextStart}
${HELP.runtime}
${HELP.json}
${HELP.verbose}
`;

/** One line of `rank --json`'s "ranking". */
export interface RankEntry {
  rank: number;
  /** 1-based line number in the captions file. */
  line: number;
  text: string;
  cosine: number;
  itm_probability: number | null;
  itm_logits: [number, number] | null;
}

/** Reads captions: one per line, CR LF or LF, lines that are empty or only whitespace skipped. */
export function parseCaptionLines(content: string): Array<{ line: number; text: string }> {
  const out: Array<{ line: number; text: string }> = [];
  content.split('\n').forEach((raw, i) => {
    const text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (text.trim() !== '') out.push({ line: i + 1, text });
  });
  return out;
}

function parseCount(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d{1,15}$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min} (decimal digits), got ${JSON.stringify(value)}`);
  }
  return n;
}

export async function rankCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values } = usageErrors('rank', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...MODEL_OPTIONS,
    image: { type: 'string', short: 'i' },
    texts: { type: 'string' },
    top: { type: 'string' },
    rerank: { type: 'string' },
    'itm-text-start': { type: 'string', default: 'cls' },
  } }));
  if (values.help) return RANK_HELP;
  const image = values.image;
  if (image === undefined) throw new UsageError('rank: give --image <path>');
  if (values.texts === undefined) throw new UsageError('rank: give --texts <file> (one caption per line, "-" for stdin)');
  const top = parseCount('top', values.top, 1);
  const rerank = parseCount('rerank', values.rerank, 0);
  const start = parseItmTextStart(values['itm-text-start']);
  const runtime = runtimeOptions(values);
  await prepareDevice(runtime);

  let content: string;
  if (values.texts === '-') {
    content = await readStdinText('a captions list');
  } else {
    content = await readPlainTextFile(values.texts, { kind: 'textList', what: 'a captions file' });
  }
  const captions = parseCaptionLines(content);
  if (captions.length === 0) throw new UsageError(`rank: no captions in ${values.texts === '-' ? 'stdin' : values.texts}`);
  await assertReadableImages([image]);

  reporter.status(`loading ${values.model} ...`);
  const model = await BlipForImageTextRetrieval.fromPretrained(values.model, { revision: values.revision, ...runtime });
  try {
    reporter.status(`ranking ${captions.length} caption(s) ...`);
    const ranked = await rankCaptions(model, image, captions.map((c) => c.text), { rerank, itmTextStart: start });
    reporter.done();
    const reranked = ranked.filter((r) => r.itmLogits !== null).length;
    const entries: RankEntry[] = ranked.slice(0, top ?? ranked.length).map((r, k) => ({
      rank: k + 1,
      line: captions[r.index].line,
      text: r.text,
      cosine: r.cosine,
      itm_probability: r.itmProbability,
      itm_logits: r.itmLogits,
    }));
    if (values.json) {
      return JSON.stringify({ model: values.model, image, captions: captions.length, reranked, itm_text_start: start, ranking: entries });
    }
    return formatTable(
      ['rank', 'match probability', 'cosine', 'line', 'caption'],
      entries.map((e) => [String(e.rank), e.itm_probability === null ? '-' : e.itm_probability.toFixed(4), e.cosine.toFixed(4), String(e.line), e.text]),
      [true, true, true, true, false],
      72,
    );
  } finally {
    await model.dispose();
  }
}
