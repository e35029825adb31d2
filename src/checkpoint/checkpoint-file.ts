import { CheckpointError } from '../errors.js';
import { oneLine, openRegularFile, rethrowFileErrorAs } from '../io/files.js';

/**
 * Opens a weights file with io/files' checks (a regular file after links: a FIFO or a folder named
 * model.safetensors is refused before anything can block), failing with the CheckpointError the
 * checkpoint readers promise.
 */
export function openCheckpointFile(file: string, what: string): ReturnType<typeof openRegularFile> {
  return rethrowFileErrorAs(() => openRegularFile(file, { what }), (f, problem, cause) => new CheckpointError(oneLine(f), problem, { cause }));
}
