/** The types of the shared forward logic (./blip-itm-core.ts) and of what a platform hands it. */
import type { Tensor as OrtTensor } from 'onnxruntime-common';
import type { Dtype } from '../checkpoint/dtype.js';
import type { Tensor } from '../tensor.js';

export type { OrtTensor };

/** The onnxruntime module of a platform (onnxruntime-node, onnxruntime-web): only its Tensor is used. */
export interface OrtModule {
  Tensor: typeof OrtTensor;
}

/** One onnxruntime session of a built graph, as each platform wraps it. */
export interface GraphRunner {
  /** How many times run() was called; tests use it to prove an encoding was reused. */
  readonly runs: number;
  run(feeds: Record<string, OrtTensor>, outputs?: string[]): Promise<Record<string, OrtTensor>>;
  dispose(): Promise<void>;
}

/** The three sessions of one model. */
export interface ModelSessions {
  vision: GraphRunner;
  text: GraphRunner;
  crossKV: GraphRunner;
}

/** What the forward logic needs of a processor: its settings, not its decoders. */
export interface ProcessorSettings {
  imageProcessor: { config: { doResize: boolean } };
  tokenizer: { encTokenId: number };
}

/** The platform's part of a loaded model. */
export interface ModelParts {
  ort: OrtModule;
  sessions: ModelSessions;
  /**
   * The precision the graphs run in. fp16 graphs take pixel_values as float16 (the model card's
   * `.to("cuda", torch.float16)`) and pass the cross-attention keys/values between them as float16.
   */
  dtype: Dtype;
  /** The weights file or URL, named in errors about non-finite outputs. */
  weightsLabel: string;
  /** preprocessor_config.json's path or URL, named when its do_resize leaves images the wrong size. */
  preprocessorLabel: string;
  /** Images per vision-encoder run (default 1). */
  visionBatchSize?: number;
  /** Captions per text or ITM run (default 32). */
  textBatchSize?: number;
  /** Rows of itmRows per cross-attention run when the caller gives none (default textBatchSize). */
  crossKVRowsPerRun?: number;
}

export interface ForwardOptions {
  /** true: ITM logits [B, 2] per (image_i, text_i) pair; false: cosine matrix [images, texts]. */
  useItmHead?: boolean;
  /**
   * 'cls' (default) keeps the tokenizer's [CLS] first token, as transformers does;
   * 'enc' replaces it by [ENC] for ITM, as the original BLIP/LAVIS code does.
   */
  itmTextStart?: 'cls' | 'enc';
}

/** Reusable result of the vision encoder for a batch of images. */
export interface ImageEncodings {
  count: number;
  /** Post-layernorm vision states [count, tokens, hidden], the ITM's cross-attention input. */
  states: Tensor;
  /** L2-normalised ITC features [count, image_text_hidden_size]. */
  embeds: Tensor;
  /** Cross-attention keys/values per image, computed on first ITM use. */
  crossKV: Array<Record<string, OrtTensor> | undefined>;
}

/** Image encodings as the ITM methods take them: without `crossKV`, keys/values are not kept. */
export type EncodedImages = Omit<ImageEncodings, 'crossKV'> & { crossKV?: ImageEncodings['crossKV'] };

/** Reusable result of the unimodal text encoder. */
export interface TextEncodings {
  count: number;
  inputIds: Tensor<BigInt64Array>;
  attentionMask: Tensor<BigInt64Array>;
  /** L2-normalised ITC features [count, image_text_hidden_size]. */
  embeds: Tensor;
}
