/**
 * Reading a checkpoint folder's tokenizer files on Node. Every file is read through
 * src/io/files.ts (regular files only, size caps), so a FIFO or a device in the folder is refused
 * with one line instead of blocking the load; parsing is ./tokenizer-files.ts.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';

import { CheckpointError } from '../../errors.js';
import { FileError, readRegularFile, type FileKind } from '../../io/files.js';
import { type TokenizerFiles, tokenizerFilesFromContents } from './tokenizer-files.js';

async function readOptional(file: string, kind: FileKind): Promise<Uint8Array | undefined> {
  try {
    return await readRegularFile(file, { kind, what: 'a tokenizer file' });
  } catch (err) {
    if (err instanceof FileError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Reads whichever of the five tokenizer files `dir` has (see the file comment). */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    throw new CheckpointError(dir, 'tokenizer folder does not exist', { cause: err });
  }
  if (!st.isDirectory()) throw new CheckpointError(dir, 'is not a folder');

  const vocabFile = path.join(dir, 'vocab.txt');
  const configFile = path.join(dir, 'tokenizer_config.json');
  const stmFile = path.join(dir, 'special_tokens_map.json');
  const addedFile = path.join(dir, 'added_tokens.json');
  const tokJsonFile = path.join(dir, 'tokenizer.json');

  const [vocab, config, specialTokensMap, addedTokens, tokenizerJson] = await Promise.all([
    readOptional(vocabFile, 'tokenizerFile'),
    readOptional(configFile, 'configJson'),
    readOptional(stmFile, 'configJson'),
    readOptional(addedFile, 'configJson'),
    readOptional(tokJsonFile, 'tokenizerFile'),
  ]);
  // path.join(dir, '/') normalises the folder as path.join(dir, file) would for each file.
  return tokenizerFilesFromContents({ vocab, config, specialTokensMap, addedTokens, tokenizerJson }, path.join(dir, '/'));
}
