import { join } from 'node:path';
import { CheckpointError } from '../errors.js';
import type { BlipTokenizer } from './tokenizer.js';

/**
 * Refuses, at load, tokenizer files that cannot be right. The tokenizer itself follows
 * transformers, which accepts nearly anything: a special token missing from vocab.txt is added
 * at the end, so a vocab.txt without its `[UNK]` line loads and shifts every later id by one; a
 * one-line vocabulary turns every word into `[UNK]`. Those run and give nonsense scores, so here
 * they are errors naming the tokenizer file. Only the tokenizer's public API is used.
 */

/** The file the vocabulary came from, for messages. */
export function vocabularyFile(dir: string, hasVocabTxt: boolean): string {
  return join(dir, hasVocabTxt ? 'vocab.txt' : 'tokenizer.json');
}

/** Plain English words every BERT uncased vocabulary has; a vocab that knows none of them is not one. */
const PROBE_WORDS = ['a', 'the', 'of', 'man', 'dog', 'on', 'with', 'two'];

/**
 * Checks that need only the tokenizer: the special tokens it names are lines of its vocabulary
 * (not appended after it), and ordinary words are not all unknown.
 */
export function checkTokenizer(tokenizer: BlipTokenizer, file: string): void {
  const base = tokenizer.vocabSize;
  // BERT's own special tokens are lines of its vocabulary; transformers appends a missing one as
  // an added token, which is how a vocab.txt without its [UNK] line slips through.
  const specials: Array<[string, number | undefined]> = [
    ['unk_token', tokenizer.unkTokenId], ['cls_token', tokenizer.clsTokenId], ['sep_token', tokenizer.sepTokenId],
    ['pad_token', tokenizer.padTokenId], ['mask_token', tokenizer.maskTokenId],
  ];
  for (const [key, id] of specials) {
    if (id === undefined || id < base) continue;
    const token = JSON.stringify(tokenizer.idToToken(id) ?? '');
    throw new CheckpointError(file, `${key} ${token} is not a token of the vocabulary (${base} lines); a vocabulary missing that line shifts every later token id`);
  }
  const known = PROBE_WORDS.filter((w) => tokenizer.tokenToId(w) !== undefined).length;
  if (known === 0) {
    throw new CheckpointError(file, `the vocabulary (${base} tokens) has none of the words ${PROBE_WORDS.map((w) => JSON.stringify(w)).join(', ')}: every caption would become [UNK]; expected BERT's uncased vocabulary`);
  }
}

/**
 * Checks the tokenizer against the model's word embedding (`text_config.vocab_size` rows): every
 * id it can produce must have a row, and the vocabulary may fall short of the embedding only by
 * the added tokens (BLIP's `[DEC]` and `[ENC]`, listed or implicit).
 */
export function checkTokenizerAgainstEmbedding(tokenizer: BlipTokenizer, file: string, embeddingRows: number): void {
  const ids = [
    tokenizer.size - 1,
    tokenizer.decTokenId,
    tokenizer.encTokenId,
    ...tokenizer.addedTokens.map((t) => t.id),
  ];
  const top = Math.max(...ids);
  if (top >= embeddingRows) {
    const token = tokenizer.idToToken(top);
    throw new CheckpointError(file, `token id ${top}${token ? ` (${JSON.stringify(token)})` : ''} is outside the word embedding of ${embeddingRows} rows (config.json text_config.vocab_size); tokenizer and checkpoint do not belong together`);
  }
  const added = new Set(tokenizer.addedTokens.filter((t) => t.id >= tokenizer.vocabSize).map((t) => t.id));
  if (tokenizer.blipTokensImplicit) {
    added.add(tokenizer.decTokenId);
    added.add(tokenizer.encTokenId);
  }
  const missing = embeddingRows - tokenizer.vocabSize;
  if (missing > added.size) {
    throw new CheckpointError(file, `the vocabulary has ${tokenizer.vocabSize} tokens (+${added.size} added) but config.json text_config.vocab_size is ${embeddingRows}; tokenizer and checkpoint do not belong together`);
  }
}
