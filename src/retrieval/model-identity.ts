import { basename } from 'node:path';
import { readBlipConfig } from '../checkpoint/config.js';
import { fingerprintWeights } from '../checkpoint/fingerprint.js';
import { parseModelReference, type ResolveOptions, resolveCheckpoint } from '../checkpoint/hub.js';
import type { TensorIndex } from '../checkpoint/tensor-info.js';
import { openWeights } from '../checkpoint/weights.js';
import { type Dtype, parseDtype } from '../checkpoint/dtype.js';
import { BlipForImageTextRetrieval, type FromPretrainedOptions } from '../model/blip-itm.js';

// Moved to the checkpoint layer so weight conversion can key its cache on it; re-exported for callers.
export { fingerprintWeights };

/**
 * Which model made a set of image features. Two identities describe the same features when their
 * `fingerprint` and `dims` agree; `model`, `revision`, `commit` and `weightsFile` only say where the
 * model came from (the same weights reached as a Hub id or as a local copy are the same model).
 */
export interface ModelIdentity {
  /** Hub repo id (`owner/name`) or the absolute path of a local checkpoint folder. */
  model: string;
  /** Hub revision asked for, when known. */
  revision?: string;
  /** Hub commit the revision resolved to, when known. */
  commit?: string;
  /** Weights file name (`model.safetensors`, `pytorch_model.bin`, or the shard index). */
  weightsFile: string;
  /** Total bytes of the weight files. */
  weightsBytes: number;
  /** `sampled-sha256-v1:<hex>`, see {@link fingerprintWeights}. */
  fingerprint: string;
  /** image_text_hidden_size: floats per ITC feature. */
  dims: number;
  /** The vision encoder's input size (pixels per side). */
  imageSize: number;
  /** The precision the features were computed in; absent in indexes made before dtypes existed (= fp32). */
  dtype?: Dtype;
}

function weightFiles(tensors: TensorIndex, fallback: string): string[] {
  const files = new Set<string>();
  for (const t of tensors.values()) files.add(t.file);
  return files.size > 0 ? [...files] : [fallback];
}

/** The identity of a loaded model. */
export async function modelIdentity(model: BlipForImageTextRetrieval): Promise<ModelIdentity> {
  const { weights } = model.source;
  const { fingerprint, bytes } = await fingerprintWeights(weightFiles(weights.tensors, weights.file));
  let name = model.source.id;
  try {
    const ref = await parseModelReference(model.source.id);
    name = ref.kind === 'local' ? ref.path : ref.repo;
  } catch {
    name = model.source.dir;
  }
  return {
    model: name,
    weightsFile: basename(weights.file),
    weightsBytes: bytes,
    fingerprint,
    dims: model.config.image_text_hidden_size,
    imageSize: model.config.vision_config.image_size,
    dtype: model.dtype,
  };
}

/** Whether features from `a` and `b` may be compared or mixed. */
export function sameModel(a: ModelIdentity, b: ModelIdentity): boolean {
  return a.fingerprint === b.fingerprint && a.dims === b.dims && (a.dtype ?? 'fp32') === (b.dtype ?? 'fp32');
}

/** One line naming a model for error messages. */
export function describeIdentity(m: ModelIdentity): string {
  const at = m.commit ? `@${m.commit.slice(0, 10)}` : m.revision ? `@${m.revision}` : '';
  const dtype = m.dtype && m.dtype !== 'fp32' ? `, ${m.dtype}` : '';
  return `${m.model}${at} (${m.weightsFile}, ${m.dims}-d features${dtype}, ${m.fingerprint.replace(/^.*:/, '').slice(0, 12)})`;
}

/**
 * A model that is identified now and loaded only if needed (re-indexing an unchanged folder never
 * loads it). Each `load()` builds a new instance from the folder the identity was computed from; the
 * caller disposes it.
 */
export interface LazyModel {
  readonly identity: ModelIdentity;
  load(): Promise<BlipForImageTextRetrieval>;
}

/**
 * Resolves `idOrPath` (downloading what the cache lacks, as `fromPretrained` would) and computes its
 * identity from the config and the weight files' headers, without building the ONNX sessions.
 */
export async function lazyModel(idOrPath: string, options: FromPretrainedOptions = {}): Promise<LazyModel> {
  const resolved = await resolveCheckpoint(idOrPath, options as ResolveOptions);
  const config = await readBlipConfig(`${resolved.dir}/config.json`);
  const weights = await openWeights(resolved.dir);
  const { fingerprint, bytes } = await fingerprintWeights(weightFiles(weights.tensors, weights.file));
  const identity: ModelIdentity = {
    model: resolved.id,
    ...(resolved.revision !== undefined ? { revision: resolved.revision } : {}),
    ...(resolved.commit !== undefined ? { commit: resolved.commit } : {}),
    weightsFile: basename(weights.file),
    weightsBytes: bytes,
    fingerprint,
    dims: config.image_text_hidden_size,
    imageSize: config.vision_config.image_size,
    dtype: parseDtype(options.dtype),
  };
  return {
    identity,
    load() {
      // The resolved folder, so the model loaded is exactly the one fingerprinted (no second Hub lookup).
      return BlipForImageTextRetrieval.fromPretrained(resolved.dir, { ...options, revision: undefined });
    },
  };
}
