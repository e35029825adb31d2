/**
 * The public API of the package, as src/index.ts exported it before the tokenizer, hub and tensor
 * modules were split: every value name must still be exported and defined, and every type name
 * must still resolve (checked by tsc through the type-only import below). Names may be added;
 * none may disappear.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type {
  FromPretrainedOptions, ForwardOptions, ImageEncodings, TextEncodings, Tensor, BlipInputs,
  ImageInput, RawImage, RgbImage, BlipConfig, VisionConfig, TextConfig, ResolveOptions,
  ResolvedCheckpoint, TensorInfo, TensorDType, RecallFigures, RetrievalRanks, TopK,
  RankCaptionsOptions, RankedCaption, EvaluateOptions, EvaluationResult, EvalProgress,
  KarpathySplit, RerankedTopK, TensorStore, TensorRecord, IndexImagesOptions, IndexSummary,
  IndexProgress, FailedImage, IndexMeta, IndexEntry, StoredImage, NearestImage, CollectedImages,
  ImageScope, TextSearchOptions, TextSearchResult, TextSearchHit, ImageSearchOptions,
  ImageSearchResult, ImageSearchHit, SkippedImage, ModelIdentity, LazyModel,
} from '../src/index.js';
import * as api from '../src/index.js';

const VALUE_NAMES = [
  'BlipForImageTextRetrieval', 'matchProbability', 'BlipProcessor', 'BlipImageProcessor',
  'BlipTokenizer', 'decodeImage', 'readBlipConfig', 'parseBlipConfig', 'resolveCheckpoint',
  'readSafetensors', 'readTensorData', 'readTorchBin', 'openWeights', 'BlipError',
  'CheckpointError', 'ImageError', 'UsageError', 'preCaption', 'PRE_CAPTION_MAX_WORDS',
  'numpyArgsort', 'queryRank', 'bestCaseRank', 'worstCaseRank', 'recallAt', 'recallFigures',
  'topK', 'TopKHeaps', 'rankCaptions', 'DEFAULT_RERANK', 'evaluateRetrieval', 'karpathySplit',
  'readKarpathySplit', 'scoreMatrix', 'DEFAULT_K_TEST', 'EncodingCache', 'MemoryTensorStore',
  'modelCacheKey', 'defaultEvalCacheDir', 'indexImages', 'DEFAULT_INDEX_BATCH_SIZE', 'ImageIndex',
  'DEFAULT_INDEX_DIR', 'collectImages', 'IMAGE_EXTENSIONS', 'searchByText', 'searchByImage',
  'DEFAULT_SEARCH_K', 'DEFAULT_SEARCH_RERANK', 'modelIdentity', 'lazyModel', 'fingerprintWeights',
] as const;

/** One entry per exported type; tsc fails here if a name stops being exported. */
interface PublicTypes {
  FromPretrainedOptions: FromPretrainedOptions;
  ForwardOptions: ForwardOptions;
  ImageEncodings: ImageEncodings;
  TextEncodings: TextEncodings;
  Tensor: Tensor;
  BlipInputs: BlipInputs;
  ImageInput: ImageInput;
  RawImage: RawImage;
  RgbImage: RgbImage;
  BlipConfig: BlipConfig;
  VisionConfig: VisionConfig;
  TextConfig: TextConfig;
  ResolveOptions: ResolveOptions;
  ResolvedCheckpoint: ResolvedCheckpoint;
  TensorInfo: TensorInfo;
  TensorDType: TensorDType;
  RecallFigures: RecallFigures;
  RetrievalRanks: RetrievalRanks;
  TopK: TopK;
  RankCaptionsOptions: RankCaptionsOptions;
  RankedCaption: RankedCaption;
  EvaluateOptions: EvaluateOptions;
  EvaluationResult: EvaluationResult;
  EvalProgress: EvalProgress;
  KarpathySplit: KarpathySplit;
  RerankedTopK: RerankedTopK;
  TensorStore: TensorStore;
  TensorRecord: TensorRecord;
  IndexImagesOptions: IndexImagesOptions;
  IndexSummary: IndexSummary;
  IndexProgress: IndexProgress;
  FailedImage: FailedImage;
  IndexMeta: IndexMeta;
  IndexEntry: IndexEntry;
  StoredImage: StoredImage;
  NearestImage: NearestImage;
  CollectedImages: CollectedImages;
  ImageScope: ImageScope;
  TextSearchOptions: TextSearchOptions;
  TextSearchResult: TextSearchResult;
  TextSearchHit: TextSearchHit;
  ImageSearchOptions: ImageSearchOptions;
  ImageSearchResult: ImageSearchResult;
  ImageSearchHit: ImageSearchHit;
  SkippedImage: SkippedImage;
  ModelIdentity: ModelIdentity;
  LazyModel: LazyModel;
}

const TYPE_NAMES: Array<keyof PublicTypes> = [
  'FromPretrainedOptions', 'ForwardOptions', 'ImageEncodings', 'TextEncodings', 'Tensor',
  'BlipInputs', 'ImageInput', 'RawImage', 'RgbImage', 'BlipConfig', 'VisionConfig', 'TextConfig',
  'ResolveOptions', 'ResolvedCheckpoint', 'TensorInfo', 'TensorDType', 'RecallFigures',
  'RetrievalRanks', 'TopK', 'RankCaptionsOptions', 'RankedCaption', 'EvaluateOptions',
  'EvaluationResult', 'EvalProgress', 'KarpathySplit', 'RerankedTopK', 'TensorStore',
  'TensorRecord', 'IndexImagesOptions', 'IndexSummary', 'IndexProgress', 'FailedImage',
  'IndexMeta', 'IndexEntry', 'StoredImage', 'NearestImage', 'CollectedImages', 'ImageScope',
  'TextSearchOptions', 'TextSearchResult', 'TextSearchHit', 'ImageSearchOptions',
  'ImageSearchResult', 'ImageSearchHit', 'SkippedImage', 'ModelIdentity', 'LazyModel',
];

test("every value src/index.ts exported before is still exported and defined", () => {
  const exported = api as Record<string, unknown>;
  const missing = VALUE_NAMES.filter((name) => exported[name] === undefined);
  assert.deepEqual(missing, []);
  assert.equal(VALUE_NAMES.length, 51);
});

test("the type names are types only, not values", () => {
  assert.equal(new Set(TYPE_NAMES).size, 47);
  const exported = api as Record<string, unknown>;
  // Tensor, BlipInputs ... are interfaces; a value of the same name would mean a different export.
  assert.deepEqual(TYPE_NAMES.filter((name) => name in exported), []);
});
