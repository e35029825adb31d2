/** What the engine keeps of one encoded image: enough for ITC and ITM, nothing derived from it. */
export interface ImageEncoding {
  /** sha256 (hex) of the image file's bytes. */
  key: string;
  /** Post-layernorm vision states [tokens, hidden] (the ITM's cross-attention input). */
  states: Float32Array;
  /** L2-normalised ITC image features [image_text_hidden_size]. */
  embeds: Float32Array;
}

export function encodingBytes(e: ImageEncoding): number {
  return e.states.byteLength + e.embeds.byteLength;
}

/**
 * Least-recently-used image encodings, bounded by the bytes of the stored states and features.
 * Cross-attention keys/values are deliberately not kept: they are ~18x the states (42 MB per
 * image for ViT-L) and cheap to recompute next to the vision encoder.
 */
export class EncodingLru {
  /** Map iteration order is insertion order: the first entry is the least recently used. */
  private readonly entries = new Map<string, ImageEncoding>();
  private used = 0;

  constructor(readonly maxBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.used;
  }

  get(key: string): ImageEncoding | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  /** Stores `e` unless it alone exceeds the bound; evicts the least recently used to fit it. */
  set(e: ImageEncoding): void {
    const size = encodingBytes(e);
    if (size > this.maxBytes) return;
    const old = this.entries.get(e.key);
    if (old) {
      this.entries.delete(e.key);
      this.used -= encodingBytes(old);
    }
    for (const [key, victim] of this.entries) {
      if (this.used + size <= this.maxBytes) break;
      this.entries.delete(key);
      this.used -= encodingBytes(victim);
    }
    this.entries.set(e.key, e);
    this.used += size;
  }

  clear(): void {
    this.entries.clear();
    this.used = 0;
  }
}
