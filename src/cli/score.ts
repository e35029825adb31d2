import { BlipForImageTextRetrieval } from '../model/blip-itm.js';
import { matchProbability } from '../model/tensors.js';
import { UsageError } from '../errors.js';
import { parseArgs } from 'node:util';
import { assertReadableImages, HELP, MODEL_OPTIONS, parseItmTextStart, prepareDevice, runtimeOptions, usageErrors } from './args.js';
import { formatTable, type Reporter } from './output.js';

export const SCORE_HELP = `Usage: blip-itm score --image <path>... --text <caption>... [options]

Scores every image against every caption: ITM match probability and ITC cosine.

Options:
${HELP.model}
${HELP.revision}
  -i, --image <path>        image file (repeatable)
  -t, --text <caption>      caption (repeatable)
${HELP.itmTextStart}
${HELP.runtime}
${HELP.json}
${HELP.verbose}
`;

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
    text: { type: 'string', short: 't', multiple: true, default: [] },
    'itm-text-start': { type: 'string', default: 'cls' },
  } }));
  if (values.help) return SCORE_HELP;
  const images = values.image;
  const texts = values.text;
  if (images.length === 0) throw new UsageError('score: give at least one --image <path>');
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
    reporter.status(`decoding ${images.length} image(s) ...`);
    const pixelValues = await model.processor.preprocessImages(images);
    reporter.status(`encoding ${images.length} image(s) ...`);
    const imageEnc = await model.encodeImages(pixelValues);
    const tokens = model.processor.tokenize(texts, { padding: 'longest' });
    const textEnc = await model.encodeTexts(tokens);
    const cosine = model.cosine(imageEnc, textEnc);
    const pairs: ScorePair[] = [];
    for (let i = 0; i < images.length; i++) {
      reporter.status(`matching image ${i + 1}/${images.length} against ${texts.length} caption(s) ...`);
      const logits = await model.itmForImage(imageEnc, i, tokens, { itmTextStart: start });
      for (let j = 0; j < texts.length; j++) {
        const l0 = logits.data[2 * j];
        const l1 = logits.data[2 * j + 1];
        pairs.push({
          image: images[i], text: texts[j], itm_logits: [l0, l1], itm_probability: matchProbability(l0, l1), cosine: cosine.data[i * texts.length + j],
        });
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
