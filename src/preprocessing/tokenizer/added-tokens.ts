/**
 * Added and special tokens: the part of transformers' `PreTrainedTokenizer` that sits before
 * the BERT stages. It registers the special tokens next to the added tokens of the files (as
 * `PreTrainedTokenizer.__init__` does), builds the lower-casing pre-pass that leaves them
 * alone, and cuts every added-token string typed in a text out before basic tokenisation
 * (`Trie.split` plus the lstrip / rstrip / single_word flags).
 */
import { pyLStrip, pyRStrip } from './basic-tokenizer.js';
import type { AddedTokenSpec } from './types.js';

/** A special-token value as the files give it: a plain string or an `AddedToken` description. */
export type SpecialValue = string | AddedTokenSpec;

/** transformers' SPECIAL_TOKENS_ATTRIBUTES, in its order (which decides the ids of new specials). */
export const SINGLE_SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;
export type SingleSpecialKey = (typeof SINGLE_SPECIAL_KEYS)[number];

export type SpecialTokens = Record<SingleSpecialKey, SpecialValue | null>;

export function contentOf(v: SpecialValue): string {
  return typeof v === 'string' ? v : v.content;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\\/]/g, '\\$&');
}

// Added-token trie (transformers' `Trie.split`: leftmost match, longest at that position)

interface TrieNode {
  next: Map<string, TrieNode>;
  terminal: boolean;
}

class TokenTrie {
  private readonly root: TrieNode = { next: new Map(), terminal: false };
  private empty = true;

  add(word: string): void {
    if (word.length === 0) return;
    let node = this.root;
    for (let i = 0; i < word.length; i++) {
      const c = word[i];
      let child = node.next.get(c);
      if (!child) {
        child = { next: new Map(), terminal: false };
        node.next.set(c, child);
      }
      node = child;
    }
    node.terminal = true;
    this.empty = false;
  }

  /** Cuts `text` at the boundaries of every match; keeps the text between matches (maybe empty). */
  split(text: string): string[] {
    if (this.empty) return [text];
    const out: string[] = [];
    let last = 0;
    let i = 0;
    while (i < text.length) {
      let node: TrieNode | undefined = this.root;
      let end = -1;
      for (let j = i; j < text.length; j++) {
        node = node.next.get(text[j]);
        if (!node) break;
        if (node.terminal) end = j + 1;
      }
      if (end > 0) {
        if (i > last) out.push(text.slice(last, i));
        out.push(text.slice(i, end));
        last = end;
        i = end;
      } else {
        i++;
      }
    }
    if (last < text.length || out.length === 0) out.push(text.slice(last));
    return out;
  }
}

/** The added tokens of a tokenizer (`added_tokens_encoder` / `added_tokens_decoder`). */
export class AddedVocabulary {
  readonly decoder: Map<number, AddedTokenSpec>;
  readonly encoder: Map<string, number>;
  /** transformers' `all_special_tokens`, in its order. */
  readonly specialTokens: string[];
  /** Distinct strings in the vocabulary and the added tokens: the next free id. */
  readonly distinctSize: number;
  private readonly trie = new TokenTrie();

  /**
   * PreTrainedTokenizer.__init__: the added tokens from the files, then every special token
   * not yet among them is added (`_add_tokens(..., special_tokens=True)`), in attribute order.
   */
  constructor(
    vocab: ReadonlyMap<string, number>,
    fileAdded: ReadonlyMap<number, AddedTokenSpec>,
    specials: SpecialTokens,
    additionalSpecials: readonly SpecialValue[],
  ) {
    this.decoder = new Map(fileAdded);
    this.encoder = new Map();
    for (const [id, tok] of this.decoder) this.encoder.set(tok.content, id);

    const extended: SpecialValue[] = [];
    const seen = new Set<string>();
    const pushSpecial = (v: SpecialValue | null) => {
      if (v === null) return;
      const c = contentOf(v);
      if (seen.has(c)) return;
      seen.add(c);
      extended.push(v);
    };
    for (const key of SINGLE_SPECIAL_KEYS) pushSpecial(specials[key]);
    for (const v of additionalSpecials) pushSpecial(v);

    const distinct = new Set<string>([...vocab.keys(), ...this.encoder.keys()]);
    const newBase = distinct.size;
    let added = 0;
    for (const v of extended) {
      if (contentOf(v) === '') continue;
      let tok: AddedTokenSpec;
      if (typeof v === 'string') {
        if (this.encoder.has(v)) continue;
        tok = { content: v, singleWord: false, lstrip: false, rstrip: false, normalized: false, special: true };
      } else {
        tok = { ...v, special: true };
      }
      let id: number;
      if (distinct.has(tok.content)) {
        id = this.encoder.get(tok.content) ?? (vocab.get(tok.content) as number);
      } else {
        id = newBase + added;
        added++;
        distinct.add(tok.content);
      }
      this.decoder.set(id, tok);
      this.encoder.set(tok.content, id);
    }
    this.distinctSize = distinct.size;

    for (const tok of this.decoder.values()) this.trie.add(tok.content);
    this.specialTokens = extended.map(contentOf);
  }

  /**
   * The lower-casing pre-pass of `PreTrainedTokenizer.tokenize`: every code point is lower-cased
   * on its own, except where a special token (or a non-special, "normalized" added token)
   * occurs verbatim. `fastSemantics` (loaded from tokenizer.json alone): an added token with
   * `normalized: false` is matched in the raw text, so it is kept out of lower-casing as well.
   */
  lowerCasePattern(fastSemantics: boolean): RegExp {
    const protectedStrings = [...this.specialTokens];
    for (const tok of this.decoder.values()) {
      if (!tok.special && tok.normalized) protectedStrings.push(tok.content);
      else if (fastSemantics && !tok.normalized) protectedStrings.push(tok.content);
    }
    const alternatives = protectedStrings.filter((x) => x.length > 0).map(escapeRegExp);
    // Python's `(specials)|(.+?)` in order; `.` matches one code point except "\n".
    return new RegExp(alternatives.length > 0 ? `(${alternatives.join('|')})|[^\\n]` : '[^\\n]', 'gu');
  }

  /**
   * Cuts every added-token string out of `text` (leftmost, longest match), honouring each
   * token's lstrip / rstrip / single_word flags. A returned piece that {@link encoder} knows is
   * that token; the others (maybe empty) go on to basic tokenisation.
   */
  split(text: string): string[] {
    const pieces = this.trie.split(text);
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (!this.encoder.has(piece)) continue;
      const tok = this.decoder.get(this.encoder.get(piece) as number);
      if (!tok) continue;
      const left = i > 0 ? pieces[i - 1] : undefined;
      const right = i < pieces.length - 1 ? pieces[i + 1] : undefined;
      if (tok.rstrip && right) pieces[i + 1] = pyLStrip(right);
      if (tok.lstrip && left) pieces[i - 1] = pyRStrip(left);
      if (tok.singleWord && left && !left.endsWith(' ')) {
        pieces[i - 1] += piece;
        pieces[i] = '';
      } else if (tok.singleWord && right && !right.startsWith(' ')) {
        pieces[i] += right;
        pieces[i + 1] = '';
      }
    }
    return pieces;
  }
}
