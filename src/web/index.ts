/** blip-itm/web: the browser build (see README, "Browser"). */
export { BlipForImageTextRetrieval } from './blip-itm.js';
export type { GraphKey, WebDType, WebForwardOptions, WebFromPretrainedOptions, WebImageEncodings } from './blip-itm.js';
export { BlipProcessor } from './processor.js';
export { BlipImageProcessor } from './image-processor.js';
export { BlipTokenizer } from '../preprocessing/tokenizer/blip-tokenizer.js';
export type { WebPreprocessOptions, WebProcessorCall } from './processor.js';
export { decodeWebImage } from './image-decode.js';
export type { WebImageInput } from './image-decode.js';
export { BlobSource, HttpRangeSource, type ByteSource } from './byte-source.js';
export { BlobModelFiles, clearModelCache, modelBaseUrl, UrlModelFiles } from './model-files.js';
export type { DownloadProgress, ModelFiles, ModelFilesOptions } from './model-files.js';
export type { WebDevice } from './session.js';
export { readSafetensorsIndex } from './weights.js';
export { matchProbability } from '../tensor.js';
export type { BlipInputs, Tensor } from '../tensor.js';
export { BlipError, CheckpointError, ImageError, UsageError } from '../errors.js';
