/**
 * transformers' `WordpieceTokenizer`: greedy longest match from the left, later pieces carrying
 * the `##` prefix; a word longer than `max_input_chars_per_word` code points, or one with a
 * stretch no vocabulary entry matches, becomes the unknown token as a whole.
 */
export class WordpieceTokenizer {
  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly unkToken: string,
    private readonly maxInputCharsPerWord: number,
    private readonly continuingSubwordPrefix: string,
  ) {}

  /** WordpieceTokenizer.tokenize for one whitespace-free word; appends the pieces to `out`. */
  tokenize(word: string, out: string[]): void {
    const chars = Array.from(word);
    if (chars.length > this.maxInputCharsPerWord) {
      out.push(this.unkToken);
      return;
    }
    const prefix = this.continuingSubwordPrefix;
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: string | undefined;
      while (start < end) {
        let sub = chars.slice(start, end).join('');
        if (start > 0) sub = prefix + sub;
        if (this.vocab.has(sub)) {
          found = sub;
          break;
        }
        end--;
      }
      if (found === undefined) {
        out.push(this.unkToken);
        return;
      }
      pieces.push(found);
      start = end;
    }
    for (const p of pieces) out.push(p);
  }
}
