/**
 * Names of converted tensors (`f16:`, `f32:`, `q8t:`, `q8s:` + the checkpoint's tensor name).
 * Kept apart from derived-weights.ts, which writes the converted file with node:fs and node:crypto,
 * so the graph builders stay free of Node-only modules (the browser build imports them).
 */
export type DerivedKind = 'f16' | 'f32' | 'q8t' | 'q8s';

export const derivedName = (kind: DerivedKind, source: string): string => `${kind}:${source}`;
