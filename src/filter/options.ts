/**
 * What a filter run is asked to do. `ResultOptions` is the part that changes the output: a rerun
 * into an existing output must agree on it (and on the model and inputs), or it is refused.
 */

export type InputFormat = 'jsonl' | 'csv' | 'parquet' | 'webdataset';
export type OutputFormat = 'parquet' | 'jsonl';

/** BLIP's CapFilt keeps a pair when its ITM match probability is at least 0.5. */
export const DEFAULT_THRESHOLD = 0.5;
export const DEFAULT_UNIT_ROWS = 1000;
export const DEFAULT_IMAGE_COL = 'image';
export const DEFAULT_TEXT_COL = 'caption';

export interface ResultOptions {
  inputFormat: InputFormat;
  imageCol: string;
  textCol: string;
  /** null: the 0-based row number across the input files (tables) or `__key__` (WebDataset). */
  idCol: string | null;
  /** Absolute folder image paths are relative to; null: paths are taken as they are. */
  imageRoot: string | null;
  threshold: number;
  minCosine: number | null;
  format: OutputFormat;
  unitRows: number;
  itmTextStart: 'cls' | 'enc';
  preCaption: boolean;
}

/** Columns the filter adds to every output row. */
export const SCORE_COLUMNS = ['itm_probability', 'itm_logits', 'cosine', 'keep', 'error'] as const;
/** The 0-based input row number, added for tables (WebDataset rows carry `__key__` instead). */
export const ROW_COLUMN = '__row__';

/** The keep rule: the paper's threshold on the match probability, and optionally a cosine floor. */
export function keepPair(options: Pick<ResultOptions, 'threshold' | 'minCosine'>, itmProbability: number, cosine: number): boolean {
  return itmProbability >= options.threshold && (options.minCosine === null || cosine >= options.minCosine);
}
