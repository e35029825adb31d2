import { BlipProcessor } from '../preprocessing/processor.js';
import { UsageError } from '../errors.js';
import { parseArgs } from 'node:util';
import { MODEL_OPTIONS, usageErrors } from './args.js';
import { formatTable, type Reporter } from './output.js';

export const TOKENIZE_HELP = `Usage: blip-itm tokenize --text <caption>... [--model <id|folder>] [--json]

Shows the word pieces and ids the model sees for each caption (no truncation).
`;

export async function tokenizeCommand(argv: string[], reporter: Reporter): Promise<string> {
  const { values } = usageErrors('tokenize', () => parseArgs({ args: argv, allowPositionals: false, strict: true, options: {
    ...MODEL_OPTIONS,
    text: { type: 'string', short: 't', multiple: true, default: [] },
  } }));
  if (values.help) return TOKENIZE_HELP;
  if (values.text.length === 0) throw new UsageError('tokenize: give at least one --text <caption>');
  reporter.status(`loading tokenizer of ${values.model} ...`);
  const processor = await BlipProcessor.fromPretrained(values.model, { revision: values.revision });
  reporter.done();
  const texts = values.text.map((text) => {
    const enc = processor.tokenizer.encode(text, { truncation: false });
    return { text, tokens: enc.tokens, input_ids: enc.inputIds };
  });
  if (values.json) return JSON.stringify({ texts });
  return formatTable(
    ['text', 'tokens', 'input_ids'],
    texts.map((t) => [t.text, t.tokens.join(' '), t.input_ids.join(' ')]),
    [false, false, false],
    120,
  );
}
