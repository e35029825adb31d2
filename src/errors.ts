/**
 * A mistake the user can fix (bad file, bad argument, missing network). The CLI prints
 * `message` as one line and exits 1 (or 2 for usage); no stack trace unless --verbose.
 * Anything that is not a BlipError is a bug in blip-itm.
 */
export class BlipError extends Error {
  /** What the error is about: a file path, an argument name, a repo id. */
  readonly subject?: string;
  constructor(message: string, options?: { subject?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BlipError';
    this.subject = options?.subject;
  }
}

/** A malformed or unsupported checkpoint, config or tokenizer file. */
export class CheckpointError extends BlipError {
  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super(`${file}: ${problem}`, { subject: file, cause: options?.cause });
    this.name = 'CheckpointError';
  }
}

/** An image that cannot be decoded or is refused (too large, empty, corrupt). */
export class ImageError extends BlipError {
  constructor(input: string, problem: string, options?: { cause?: unknown }) {
    super(`${input}: ${problem}`, { subject: input, cause: options?.cause });
    this.name = 'ImageError';
  }
}

/**
 * An image refused for its size (more pixels than the decoder's limit), not for its content:
 * the service answers 413 for this and 415 for other ImageErrors.
 */
export class ImageTooLargeError extends ImageError {
  constructor(input: string, problem: string, options?: { cause?: unknown }) {
    super(input, problem, options);
    this.name = 'ImageTooLargeError';
  }
}

/** Bad command-line or API arguments; the CLI exits 2 on these. */
export class UsageError extends BlipError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
