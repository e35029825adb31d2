import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { BlipError, UsageError } from '../errors.js';
import { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import { defaultEvalCacheDir, EncodingCache, modelCacheKey, type TensorStore } from '../retrieval/encoding-cache.js';
import { DEFAULT_K_TEST, type EvalProgress, evaluateRetrieval, readKarpathySplit, splitImagePaths } from '../retrieval/evaluate.js';
import { assertReadableImages, HELP, MODEL_OPTIONS, prepareDevice, runtimeOptions, usageErrors } from './args.js';
import { formatTable, type Reporter } from './output.js';

export const EVAL_HELP = `Usage: blip-itm eval --annotations <karpathy-test.json> --images <root> [options]

The BLIP paper's image-text retrieval evaluation (COCO 5k test, Flickr30k 1k test): captions
cleaned by pre_caption (30 words) and tokenised to 35 tokens, ITC similarities, the top k_test
candidates of every query rescored with ITM ([ENC] first; score = match logit + similarity),
then text-retrieval (TR) and image-retrieval (IR) recall@1/5/10.

Options:
${HELP.model}
${HELP.revision}
      --annotations <file>  Karpathy-format split: [{"image": path, "caption": [...]}, ...]
      --images <root>       folder the annotation's image paths are relative to
      --k-test <k>          candidates rescored with ITM per query (default: ${DEFAULT_K_TEST})
      --cache <dir>         encoding cache; reruns resume from it (default: ${defaultEvalCacheDir()})
      --no-cache            keep encodings in memory only
${HELP.runtime}
      --json                print one JSON object (LAVIS's keys: txt_r1 ... r_mean, percent)
${HELP.verbose}
`;

const PHASE_LABEL: Record<EvalProgress['phase'], string> = {
  texts: 'encoding texts',
  images: 'encoding images',
  similarity: 'ITC similarities',
  rerank: 'ITM reranking, image',
  ranking: 'ranking',
};

export async function evalCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values } = usageErrors('eval', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...MODEL_OPTIONS,
    annotations: { type: 'string' },
    images: { type: 'string' },
    'k-test': { type: 'string', default: String(DEFAULT_K_TEST) },
    cache: { type: 'string' },
    'no-cache': { type: 'boolean', default: false },
  } }));
  if (values.help) return EVAL_HELP;
  if (values.annotations === undefined) throw new UsageError('eval: give --annotations <karpathy-test.json>');
  if (values.images === undefined) throw new UsageError('eval: give --images <root> (the folder the annotation\'s image paths are relative to)');
  const kText = values['k-test'];
  const kTest = Number(kText);
  if (!/^\d{1,15}$/.test(kText) || !Number.isSafeInteger(kTest) || kTest < 1) throw new UsageError(`--k-test must be a positive integer, got "${kText}"`);
  if (values['no-cache'] && values.cache !== undefined) throw new UsageError('eval: --cache and --no-cache exclude each other');
  const runtime = runtimeOptions(values);
  await prepareDevice(runtime);

  const split = await readKarpathySplit(values.annotations);
  let isFolder = false;
  try {
    isFolder = (await stat(values.images)).isDirectory();
  } catch {
    throw new BlipError(`${values.images}: image folder not found`);
  }
  if (!isFolder) throw new BlipError(`${values.images}: not a folder (--images names the folder the annotation's image paths are relative to)`);
  await assertReadableImages(await splitImagePaths(split, values.images));

  reporter.status(`loading ${values.model} ...`);
  const model = await BlipForImageTextRetrieval.fromPretrained(values.model, { revision: values.revision, ...runtime });
  try {
    let store: TensorStore | undefined;
    let modelKey: string | undefined;
    if (!values['no-cache']) {
      modelKey = await modelCacheKey(model);
      const cache = new EncodingCache(values.cache ?? defaultEvalCacheDir(), modelKey);
      await cache.init({ model: values.model, revision: values.revision ?? null, weights: model.source.weights.file });
      store = cache;
    }
    const result = await evaluateRetrieval(model, split, {
      kTest,
      imageRoot: values.images,
      store,
      modelKey,
      onProgress: (p) => reporter.status(`${PHASE_LABEL[p.phase]} ${p.done}/${p.total}${p.cached ? ` (${p.cached} cached)` : ''} ...`),
    });
    reporter.done();
    if (values.json) return JSON.stringify(result.recall);
    const r = result.recall;
    const f = (x: number) => x.toFixed(1);
    return [
      `${basename(values.annotations)}: ${result.images} images, ${result.texts} texts; model ${values.model}; k_test ${kTest}`,
      '',
      formatTable(
        ['TR@1', 'TR@5', 'TR@10', 'IR@1', 'IR@5', 'IR@10', 'TR mean', 'IR mean', 'r_mean'],
        [[f(r.txt_r1), f(r.txt_r5), f(r.txt_r10), f(r.img_r1), f(r.img_r5), f(r.img_r10), f(r.txt_r_mean), f(r.img_r_mean), f(r.r_mean)]],
        new Array(9).fill(true),
      ),
    ].join('\n');
  } finally {
    await model.dispose();
  }
}
