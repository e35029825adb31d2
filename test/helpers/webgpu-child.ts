/**
 * Runs a fixture model's golden pairs on the provider given in argv and prints the ITM logits and
 * the cosine matrix as JSON. A child process, so that VK_ICD_FILENAMES (and Dawn's stderr) stay
 * confined to it. Usage: webgpu-child.ts <model dir> <golden file> <provider> [dtype]
 */
import { BlipForImageTextRetrieval } from '../../src/model/blip-itm.js';
import { FIXTURES, manifestEntry, textById } from './goldens.js';

const [dir, goldenName, provider, dtype] = process.argv.slice(2);
const pairs = manifestEntry(goldenName, 'itm/logits');
const model = await BlipForImageTextRetrieval.fromPretrained(dir, {
  executionProvider: provider as 'webgpu', dtype: (dtype ?? 'fp32') as 'fp32',
});
try {
  const inputs = await model.processor.call({ images: pairs.images!.map((p) => `${FIXTURES}/${p}`), text: pairs.texts!.map(textById) });
  const itm = await model.forward(inputs);
  const cos = await model.forward(inputs, { useItmHead: false });
  process.stdout.write(`${JSON.stringify({ itm: [...itm.data], cos: [...cos.data] })}\n`);
} finally {
  await model.dispose();
}
