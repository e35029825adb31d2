import { existsSync, readdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type * as lancedb from '@lancedb/lancedb';
import { BlipError } from '../errors.js';
import { describeIdentity, type ModelIdentity, sameModel } from './model-identity.js';

/**
 * The persistent image index: an embedded LanceDB database (a folder; no server) holding one row per
 * image file with its ITC feature, and a one-row metadata table naming the model that made them.
 *
 * Tables:
 * - `images`: `path` (utf8, absolute), `size` (float64, bytes), `mtime_ms` (float64, the file's
 *   modification time in ms as `fs.stat` reports it), `sha256` (utf8, hex of the file's bytes),
 *   `vector` (fixed-size list of `dims` float32: the L2-normalised ITC feature). One row per path.
 * - `meta`: `key` (utf8) = "index", `value` (utf8) = JSON {@link IndexMeta}.
 *
 * `meta` is written before any image, so a folder with an `images` table and no `meta` was not made
 * by blip-itm. Every write is one LanceDB commit (atomic: a crash leaves the table as it was before
 * or after it).
 */

export const DEFAULT_INDEX_DIR = 'blip-index';
export const IMAGES_TABLE = 'images';
export const META_TABLE = 'meta';
/** Bump when the tables change meaning; older indexes are then refused (rebuild them). */
export const INDEX_FORMAT = 1;

export interface IndexMeta {
  format: number;
  /** ISO time the index was created. */
  created: string;
  /** The model whose features the index holds. */
  model: ModelIdentity;
  /**
   * Set once the images table has been created, so that a table deleted afterwards reads as a
   * damaged index rather than as an empty one. Absent in indexes written before this field.
   */
  imagesTable?: boolean;
}

/** What is stored about one image, besides its feature. */
export interface IndexEntry {
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
}

export interface StoredImage extends IndexEntry {
  /** The L2-normalised ITC feature. */
  vector: Float32Array;
}

export interface NearestImage extends IndexEntry {
  /** Cosine similarity of the stored feature and the query feature (both normalised). */
  cosine: number;
}

/** Paths per SQL `IN (...)` list. */
const IN_CHUNK = 256;
const ENTRY_COLUMNS = ['path', 'size', 'mtime_ms', 'sha256'];

/** A SQL string literal (LanceDB filters are DataFusion SQL: quotes doubled, backslashes literal). */
export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function pathIn(paths: string[]): string {
  return `path IN (${paths.map(sqlString).join(', ')})`;
}

function chunks<T>(list: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

function toEntry(row: Record<string, unknown>): IndexEntry {
  return { path: String(row.path), size: Number(row.size), mtimeMs: Number(row.mtime_ms), sha256: String(row.sha256) };
}

/** An Arrow vector or typed array from a query row, as Float32Array. */
function toFloat32(value: unknown): Float32Array {
  if (value instanceof Float32Array) return value;
  const v = value as { toArray?: () => ArrayLike<number> } | ArrayLike<number>;
  if (v && typeof (v as { toArray?: unknown }).toArray === 'function') return Float32Array.from((v as { toArray: () => ArrayLike<number> }).toArray());
  return Float32Array.from(v as ArrayLike<number>);
}

/**
 * LanceDB's native logger prints warnings to stderr and reads its level from LANCEDB_LOG when the
 * native module loads. Unless the user chose a level, keep it to errors so that stderr carries only
 * what blip-itm says; hence the module is loaded here, on first use, after setting it.
 */
async function connect(dir: string): Promise<lancedb.Connection> {
  process.env.LANCEDB_LOG ??= 'error';
  const { connect: lanceConnect } = await import('@lancedb/lancedb');
  return lanceConnect(dir);
}

function dbError(dir: string, what: string, e: unknown): BlipError {
  if (e instanceof BlipError) return e;
  if (what !== 'write to') return damaged(dir, e);
  const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0].replace(/,? *(?:at )?[\w./-]*\.rs:\d+:\d+.*$/, '');
  return new BlipError(`${dir}: cannot ${what} the image index (${msg})`, { subject: dir, cause: e });
}

/**
 * LanceDB failing to read a table we created means files of it were removed or changed under us.
 * Its own message (Rust error chains with source locations) says nothing a user can act on, so it
 * stays in `cause` (shown with --verbose) and the message says what to do.
 */
function damaged(dir: string, e?: unknown): BlipError {
  const msg = e instanceof Error ? e.message : '';
  const why = /not ?found|no such file|does not exist/i.test(msg) ? 'files of it are missing' : 'LanceDB cannot read it';
  return new BlipError(`index ${dir} is damaged (${why}); \`blip-itm index <folder> --db ${dir} --rebuild\` rebuilds it`, { subject: dir, cause: e });
}

export interface OpenForWritingOptions {
  /** Drop what the index holds (any model) and start over. */
  rebuild?: boolean;
}

export class ImageIndex {
  private constructor(
    /** Absolute path of the database folder. */
    readonly dir: string,
    private readonly db: lancedb.Connection,
    private table: lancedb.Table | undefined,
    private currentMeta: IndexMeta,
  ) {}

  /** What the index says about itself (model, format). */
  get meta(): IndexMeta {
    return this.currentMeta;
  }

  /** Opens an existing index for reading (search). */
  static async open(dir: string = DEFAULT_INDEX_DIR): Promise<ImageIndex> {
    const abs = resolve(dir);
    if (!existsSync(abs)) throw new BlipError(`no image index at ${dir} (build one with: blip-itm index <folder> --db ${dir})`, { subject: dir });
    let db: lancedb.Connection | undefined;
    try {
      db = await connect(abs);
      const names = await db.tableNames();
      if (!names.includes(META_TABLE)) {
        throw new BlipError(`${dir} is not a blip-itm image index (no "${META_TABLE}" table; build one with: blip-itm index <folder> --db ${dir})`, { subject: dir });
      }
      const meta = await readMeta(db, abs);
      if (meta.imagesTable && !names.includes(IMAGES_TABLE)) throw damaged(dir, new Error(`the "${IMAGES_TABLE}" table does not exist`));
      const table = names.includes(IMAGES_TABLE) ? await db.openTable(IMAGES_TABLE) : undefined;
      if (table) {
        await checkVectorWidth(table, meta, dir);
        // Opening reads only the manifest; counting touches the data files, so damage shows here.
        await table.countRows();
      }
      return new ImageIndex(abs, db, table, meta);
    } catch (e) {
      db?.close();
      throw dbError(dir, 'open', e);
    }
  }

  /**
   * Opens the index at `dir` for adding images made by `model`, creating it if the folder is absent
   * or empty. An index made by another model is refused unless `rebuild` is set; a folder that holds
   * something else than a blip-itm index is always refused.
   */
  static async openForWriting(dir: string, model: ModelIdentity, options: OpenForWritingOptions = {}): Promise<ImageIndex> {
    const abs = resolve(dir);
    if (existsSync(abs) && !statSync(abs).isDirectory()) throw new BlipError(`${dir} is a file, not an image index folder`, { subject: dir });
    const entries = existsSync(abs) ? readdirSync(abs) : [];
    let db: lancedb.Connection | undefined;
    try {
      db = await connect(abs);
      const names = await db.tableNames();
      const ours = new Set([META_TABLE, IMAGES_TABLE]);
      const foreign = entries.filter((e) => !ours.has(e.replace(/\.lance$/, '')) || !e.endsWith('.lance'));
      if (!names.includes(META_TABLE) && (entries.length > 0 && (foreign.length > 0 || !options.rebuild))) {
        throw new BlipError(`${dir} exists and is not a blip-itm image index; give --db a new or empty folder`, { subject: dir });
      }
      let meta: IndexMeta | undefined = names.includes(META_TABLE) ? await readMeta(db, abs) : undefined;
      if (meta && !options.rebuild && !sameModel(meta.model, model)) {
        throw new BlipError(
          `${dir} holds features of ${describeIdentity(meta.model)}, not of ${describeIdentity(model)}; ` +
            'features of different models cannot be mixed: use --rebuild to start the index over with this model, or another --db',
          { subject: dir },
        );
      }
      if (options.rebuild) {
        for (const name of [IMAGES_TABLE, META_TABLE]) if (names.includes(name)) await db.dropTable(name);
        meta = undefined;
      }
      if (!meta) {
        meta = { format: INDEX_FORMAT, created: new Date().toISOString(), model };
        await db.createTable(META_TABLE, [{ key: 'index', value: JSON.stringify(meta) }], { mode: 'create' });
      }
      if (!options.rebuild && meta.imagesTable && !names.includes(IMAGES_TABLE)) throw damaged(dir, new Error(`the "${IMAGES_TABLE}" table does not exist`));
      const hasImages = !options.rebuild && names.includes(IMAGES_TABLE);
      const table = hasImages ? await db.openTable(IMAGES_TABLE) : undefined;
      if (table) await checkVectorWidth(table, meta, dir);
      return new ImageIndex(abs, db, table, meta);
    } catch (e) {
      db?.close();
      throw dbError(dir, 'open', e);
    }
  }

  /** Throws a clear error unless `model` made this index's features. */
  assertModel(model: ModelIdentity, hint = 'search with the model the index was built with (leave out --model to use it)'): void {
    if (!sameModel(this.meta.model, model)) {
      throw new BlipError(
        `${this.dir} holds features of ${describeIdentity(this.meta.model)}, not of ${describeIdentity(model)}: ${hint}`,
        { subject: this.dir },
      );
    }
  }

  get dims(): number {
    return this.meta.model.dims;
  }

  /** Rows stored. */
  async count(): Promise<number> {
    return this.read(() => (this.table ? this.table.countRows() : Promise.resolve(0)));
  }

  /** A read of the tables; LanceDB failures mean the index was damaged after it was opened. */
  private async read<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      throw dbError(this.dir, 'read', e);
    }
  }

  /** Every stored row's path, size, mtime and hash (no features). A path may appear twice only after a foreign write. */
  async entries(): Promise<IndexEntry[]> {
    const table = this.table;
    if (!table) return [];
    const rows = await this.read(() => table.query().select(ENTRY_COLUMNS).toArray());
    return rows.map(toEntry);
  }

  /** Every stored row with its feature. */
  async all(): Promise<StoredImage[]> {
    const table = this.table;
    if (!table) return [];
    const rows = await this.read(() => table.query().select([...ENTRY_COLUMNS, 'vector']).toArray());
    return rows.map((r) => ({ ...toEntry(r), vector: toFloat32(r.vector) }));
  }

  /** Stored rows of the given paths (those stored), with features. */
  async get(paths: string[]): Promise<StoredImage[]> {
    const table = this.table;
    if (!table || paths.length === 0) return [];
    const out: StoredImage[] = [];
    for (const chunk of chunks(paths, IN_CHUNK)) {
      const rows = await this.read(() => table.query().where(pathIn(chunk)).select([...ENTRY_COLUMNS, 'vector']).toArray());
      for (const r of rows) out.push({ ...toEntry(r), vector: toFloat32(r.vector) });
    }
    return out;
  }

  /**
   * The `limit` stored images nearest to `vector` (an L2-normalised feature of this model) by cosine,
   * best first. An exact (flat) scan: no approximate vector index is built.
   */
  async nearest(vector: Float32Array, limit: number): Promise<NearestImage[]> {
    if (vector.length !== this.dims) throw new BlipError(`query feature has ${vector.length} floats; this index holds ${this.dims}`);
    const table = this.table;
    if (!table || limit < 1) return [];
    const rows = await this.read(() => table
      .vectorSearch(Array.from(vector))
      .distanceType('dot')
      .limit(limit)
      .select([...ENTRY_COLUMNS, '_distance'])
      .toArray());
    // LanceDB's dot "distance" is 1 - a.b; for normalised features a.b is the cosine.
    return rows.map((r) => ({ ...toEntry(r), cosine: 1 - Number(r._distance) }));
  }

  /** Deletes the rows of `paths` (one commit per 256 paths). Returns how many rows went. */
  async remove(paths: string[]): Promise<number> {
    if (!this.table || paths.length === 0) return 0;
    let removed = 0;
    for (const chunk of chunks(paths, IN_CHUNK)) removed += (await this.table.delete(pathIn(chunk))).numDeletedRows;
    return removed;
  }

  /**
   * Stores `images`, replacing any rows of the same paths: the old rows are deleted (one commit), then
   * the new ones added (one commit). A crash between the two leaves those paths absent, never doubled,
   * and the next run encodes them again. `replacing`: the paths that may have rows now (default: all
   * of them); a caller that knows which images are new saves the delete.
   */
  async put(images: StoredImage[], replacing: string[] = images.map((i) => i.path)): Promise<void> {
    if (images.length === 0) return;
    const seen = new Set<string>();
    for (const img of images) {
      if (seen.has(img.path)) throw new BlipError(`put(): ${img.path} given twice`);
      seen.add(img.path);
      if (img.vector.length !== this.dims) throw new BlipError(`put(): ${img.path} has a ${img.vector.length}-float feature; this index holds ${this.dims}`);
    }
    const rows = images.map((img) => ({
      path: img.path,
      size: img.size,
      mtime_ms: img.mtimeMs,
      sha256: img.sha256,
      vector: Array.from(img.vector),
    }));
    try {
      if (this.table) {
        await this.remove(replacing);
        await this.table.add(rows);
      } else {
        this.table = await this.db.createTable(IMAGES_TABLE, rows, { mode: 'create' });
        await this.recordImagesTable();
      }
    } catch (e) {
      throw dbError(this.dir, 'write to', e);
    }
  }

  /** Notes in the metadata that the images table exists (see {@link IndexMeta.imagesTable}). */
  private async recordImagesTable(): Promise<void> {
    if (this.meta.imagesTable) return;
    const meta: IndexMeta = { ...this.meta, imagesTable: true };
    const table = await this.db.openTable(META_TABLE);
    try {
      await table.update({ where: "key = 'index'", values: { value: JSON.stringify(meta) } });
    } finally {
      table.close();
    }
    this.currentMeta = meta;
  }

  /** Compacts the many small commits of a run into few files and drops superseded versions. */
  async optimize(): Promise<void> {
    if (!this.table) return;
    try {
      await this.table.optimize({ cleanupOlderThan: new Date() });
    } catch (e) {
      throw dbError(this.dir, 'compact', e);
    }
  }

  close(): void {
    this.table?.close();
    this.db.close();
  }
}

async function readMeta(db: lancedb.Connection, dir: string): Promise<IndexMeta> {
  const table = await db.openTable(META_TABLE);
  try {
    const rows = await table.query().where("key = 'index'").toArray();
    if (rows.length !== 1) throw new BlipError(`${dir}: the index metadata is missing or damaged; rebuild the index (--rebuild)`, { subject: dir });
    let meta: IndexMeta;
    try {
      meta = JSON.parse(String(rows[0].value)) as IndexMeta;
    } catch {
      throw new BlipError(`${dir}: the index metadata is not valid JSON; rebuild the index (--rebuild)`, { subject: dir });
    }
    if (meta.format !== INDEX_FORMAT) {
      throw new BlipError(`${dir}: index format ${String(meta.format)} is not the supported ${INDEX_FORMAT}; rebuild the index (--rebuild)`, { subject: dir });
    }
    if (!meta.model || typeof meta.model.fingerprint !== 'string' || !Number.isInteger(meta.model.dims)) {
      throw new BlipError(`${dir}: the index metadata does not name its model; rebuild the index (--rebuild)`, { subject: dir });
    }
    return meta;
  } finally {
    table.close();
  }
}

async function checkVectorWidth(table: lancedb.Table, meta: IndexMeta, dir: string): Promise<void> {
  const schema = await table.schema();
  const field = schema.fields.find((f) => f.name === 'vector');
  const width = (field?.type as { listSize?: number } | undefined)?.listSize;
  if (width !== meta.model.dims) {
    throw new BlipError(`${dir}: the images table holds ${String(width)}-float features but the metadata says ${meta.model.dims}; rebuild the index (--rebuild)`, { subject: dir });
  }
}
