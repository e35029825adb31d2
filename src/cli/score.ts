import { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import { matchProbability } from '../tensor.js';
import { UsageError } from '../errors.js';
import { readPlainTextFile } from '../io/files.js';
import { parseArgs } from 'node:util';
import { assertReadableImages, HELP, MODEL_OPTIONS, parseItmTextStart, prepareDevice, readStdinText, runtimeOptions, usageErrors } from './args.js';
import { formatTable, type Reporter } from './output.js';

export const SCORE_HELP = `Usage: blip-itm score --image <path>... --text <caption>... [options]

Scores every image against every caption: ITM match probability and ITC cosine.

Options:
${HELP.model}
${HELP.revision}
  -i, --image <path>        image file (repeatable)
      --images-from <file>  image paths, one per line (blank lines skipped; "-" reads stdin)
  -t, --text <caption>      caption (repeatable)
${HELP.itmTextStart}
${HELP.runtime}
${HELP.json}
${HELP.verbose}
`;

/**
 * Image paths from a list file, one per line (CR LF or LF; blank lines skipped), for more images
 * than a command line holds. Paths are taken as written, relative to the working folder like --image.
 */
async function readPathList(file: string): Promise<string[]> {
  const text = file === '-' ? await readStdinText('an image list') : await readPlainTextFile(file, { kind: 'textList', what: 'an image list file' });
  return text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l.trim() !== '');
}

/** Images decoded and encoded together by `score`. */
const IMAGE_GROUP = 16;

export interface ScorePair {
  image: string;
  text: string;
  itm_logits: [number, number];
  itm_probability: number;
  cosine: number;
}

export async function scoreCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values } = usageErrors('score', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...MODEL_OPTIONS,
    image: { type: 'string', short: 'i', multiple: true, default: [] },
    'images-from': { type: 'string' },
    text: { type: 'string', short: 't', multiple: true, default: [] },
    'itm-text-start': { type: 'string', default: 'cls' },
  } }));
  if (values.help) return SCORE_HELP;
  const images = [...values.image, ...(values['images-from'] === undefined ? [] : await readPathList(values['images-from']))];
  const texts = values.text;
  if (images.length === 0) throw new UsageError(`score: give at least one --image <path>${values['images-from'] !== undefined ? ` (${values['images-from']} lists none)` : ''}`);
  if (texts.length === 0) throw new UsageError('score: give at least one --text <caption>');
  const start = parseItmTextStart(values['itm-text-start']);
  const runtime = runtimeOptions(values);
  await prepareDevice(runtime);
  await assertReadableImages(images);
  reporter.status(`loading ${values.model} ...`);
  const model = await BlipForImageTextRetrieval.fromPretrained(values.model, {
    revision: values.revision,
    ...runtime,
  });
  try {
    const tokens = model.processor.tokenize(texts, { padding: 'longest' });
    const textEnc = await model.encodeTexts(tokens);
    const pairs: ScorePair[] = [];
    // A group of images at a time: pixels and vision states of 1,200 images at 384 px would be
    // about 5 GB for ViT-L, while a group's are a few tens of MB whatever the image count.
    for (let first = 0; first < images.length; first += IMAGE_GROUP) {
      const group = images.slice(first, first + IMAGE_GROUP);
      reporter.status(`encoding image(s) ${first + 1}-${first + group.length} of ${images.length} ...`);
      const imageEnc = await model.encodeImages(await model.processor.preprocessImages(group));
      const cosine = model.cosine(imageEnc, textEnc);
      for (let i = 0; i < group.length; i++) {
        reporter.status(`matching image ${first + i + 1}/${images.length} against ${texts.length} caption(s) ...`);
        const logits = await model.itmForImage(imageEnc, i, tokens, { itmTextStart: start });
        for (let j = 0; j < texts.length; j++) {
          const l0 = logits.data[2 * j];
          const l1 = logits.data[2 * j + 1];
          pairs.push({
            image: group[i], text: texts[j], itm_logits: [l0, l1], itm_probability: matchProbability(l0, l1), cosine: cosine.data[i * texts.length + j],
          });
        }
      }
    }
    reporter.done();
    if (values.json) return JSON.stringify({ model: values.model, pairs });
    return formatTable(
      ['image', 'text', 'match probability', 'cosine'],
      pairs.map((p) => [p.image, p.text, p.itm_probability.toFixed(4), p.cosine.toFixed(4)]),
      [false, false, true, true],
    );
  } finally {
    await model.dispose();
  }
}
