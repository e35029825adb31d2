import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { DEFAULT_INDEX_DIR, ImageIndex } from '../retrieval/image-index.js';
import { lazyModel } from '../retrieval/model-identity.js';
import { DEFAULT_SEARCH_K, DEFAULT_SEARCH_RERANK, searchByImage, searchByText } from '../retrieval/search.js';
import { HELP, MODEL_OPTIONS, parseItmTextStart, prepareDevice, runtimeOptions, usageErrors } from './args.js';
import { parseCount } from './index-command.js';
import { formatTable, type Reporter } from './output.js';

export const SEARCH_HELP = `Usage: blip-itm search [--db <path>] --text "<query>" [options]
       blip-itm search [--db <path>] --image <path> [options]

--text: the --rerank images of the index nearest to the query by ITC cosine are read again from
disk and scored with ITM; the best --k are printed by BLIP's retrieval score, ITM match logit + ITC
cosine, with the match probability, the logit and the cosine. --rerank 0: ITC cosine alone.
--image: the --k indexed images nearest to an image by ITC cosine (no ITM).
Indexed images that are gone are skipped with a warning on stderr.

Options:
      --db <path>           index folder (default: ./${DEFAULT_INDEX_DIR})
  -t, --text <query>        text to search for
  -i, --image <path>        image to find similar indexed images for
  -k, --k <n>               results (default: ${DEFAULT_SEARCH_K})
      --rerank <n>          ITC candidates rescored with ITM (default: ${DEFAULT_SEARCH_RERANK}, at least --k; 0: none)
      --batch-size <n>      candidate images decoded together (default: 16)
${HELP.itmTextStart}
  -m, --model <id|folder>   default: the model the index was built with (another one is refused)
${HELP.revision}
${HELP.runtime}
${HELP.json}
${HELP.verbose}
`;

export async function searchCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values } = usageErrors('search', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...MODEL_OPTIONS,
    model: { type: 'string', short: 'm' },
    db: { type: 'string', default: DEFAULT_INDEX_DIR },
    text: { type: 'string', short: 't' },
    image: { type: 'string', short: 'i' },
    k: { type: 'string', short: 'k' },
    rerank: { type: 'string' },
    'batch-size': { type: 'string' },
    'itm-text-start': { type: 'string', default: 'cls' },
  } }));
  if (values.help) return SEARCH_HELP;
  const { text, image } = values;
  if ((text === undefined) === (image === undefined)) throw new UsageError('search: give either --text "<query>" or --image <path> (see: blip-itm search --help)');
  const k = parseCount('k', values.k, 1) ?? DEFAULT_SEARCH_K;
  const rerank = parseCount('rerank', values.rerank, 0);
  if (image !== undefined && rerank !== undefined) throw new UsageError('search: --rerank applies to --text searches only');
  const batchSize = parseCount('batch-size', values['batch-size'], 1) ?? 16;
  const start = parseItmTextStart(values['itm-text-start']);
  const runtime = runtimeOptions(values);
  await prepareDevice(runtime);

  reporter.status('opening the index ...');
  const index = await ImageIndex.open(values.db);
  try {
    const stored = index.meta.model;
    const modelId = values.model ?? stored.model;
    const revision = values.model === undefined && values.revision === undefined ? stored.revision : values.revision;
    reporter.status(`resolving ${modelId} ...`);
    // Without --dtype, the index's own (the features must be computed the same way to compare).
    const dtype = values.dtype === undefined ? stored.dtype ?? 'fp32' : runtime.dtype;
    const lazy = await lazyModel(modelId, { revision, ...runtime, dtype });
    // Refused before the (slow) model load.
    index.assertModel(lazy.identity, `search with the model the index was built with (leave out --model), or build an index for ${modelId} with --rebuild or another --db`);
    reporter.status(`loading ${modelId} ...`);
    const model = await lazy.load();
    const onWarning = (message: string): void => {
      reporter.done();
      process.stderr.write(`blip-itm: warning: ${message}\n`);
    };
    const onStatus = (s: string): void => reporter.status(s);
    try {
      if (text !== undefined) {
        const r = await searchByText(index, model, text, {
          k, rerank: rerank ?? DEFAULT_SEARCH_RERANK, batchSize, itmTextStart: start, onWarning, onStatus,
        });
        reporter.done();
        if (values.json) {
          return JSON.stringify({
            db: index.dir,
            model: stored.model,
            query: { text },
            reranked: r.reranked,
            candidates: r.candidates,
            results: r.hits.map((h) => ({
              rank: h.rank,
              path: h.path,
              combined: h.combined ?? null,
              itm_probability: h.itmProbability ?? null,
              itm_logit: h.itmLogits ? h.itmLogits[1] : null,
              itm_logits: h.itmLogits ?? null,
              cosine: h.cosine,
              index_cosine: h.indexCosine,
              itc_rank: h.itcRank,
            })),
            skipped: r.skipped,
          });
        }
        if (r.hits.length === 0) return 'no results (the index is empty, or its images are gone)';
        if (!r.reranked) {
          return formatTable(['rank', 'cosine', 'image'], r.hits.map((h) => [String(h.rank), h.cosine.toFixed(4), h.path]), [true, true, false], 4096);
        }
        return formatTable(
          ['rank', 'score', 'match prob', 'itm logit', 'cosine', 'image'],
          r.hits.map((h) => [String(h.rank), h.combined!.toFixed(4), h.itmProbability!.toFixed(4), h.itmLogits![1].toFixed(4), h.cosine.toFixed(4), h.path]),
          [true, true, true, true, true, false],
          4096,
        );
      }
      const r = await searchByImage(index, model, image!, { k, onWarning, onStatus });
      reporter.done();
      if (values.json) {
        return JSON.stringify({ db: index.dir, model: stored.model, query: { image }, results: r.hits, skipped: r.skipped });
      }
      if (r.hits.length === 0) return 'no results (the index is empty, or its images are gone)';
      return formatTable(['rank', 'cosine', 'image'], r.hits.map((h) => [String(h.rank), h.cosine.toFixed(4), h.path]), [true, true, false], 4096);
    } finally {
      await model.dispose();
    }
  } finally {
    index.close();
  }
}
