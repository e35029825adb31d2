import { randomBytes } from 'node:crypto';
import { readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';

/**
 * Temporary files in the output folder. Every file the filter writes is first written to
 * `.<name>.tmp-<host>-<pid>-<random>` beside it and renamed into place, so a reader (or a rerun
 * after a crash) sees either the whole file or none. The host and pid say whose a temp file is:
 * another worker sharing the folder may be writing it right now.
 */
const HOST = hostname().replace(/[^A-Za-z0-9.]/g, '_');
const TEMP = /^\..+\.tmp-(.+)-(\d+)-[0-9a-f]{8}$/;
/** A temp file of another host is only taken as abandoned when it has not changed for this long. */
const FOREIGN_STALE_MS = 60 * 60 * 1000;

export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temp files that nobody is writing: this host's whose process is gone (and this
 * process's own, from an earlier run that failed), and other hosts' untouched for an hour.
 * With `file`, only the temps of that one file, and never this process's own (it may be writing
 * another unit right now): a worker calls this before taking over a unit, so the temp of a
 * worker killed in the middle of that unit goes when the unit is redone, not only at the next start.
 * Returns how many were removed.
 */
export async function cleanStaleTemps(dir: string, file?: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const m = TEMP.exec(name);
    if (!m) continue;
    if (file !== undefined && !name.startsWith(`.${file}.tmp-`)) continue;
    const path = join(dir, name);
    const pid = Number(m[2]);
    let stale = m[1] === HOST ? (pid === process.pid ? file === undefined : !alive(pid)) : false;
    if (m[1] !== HOST) {
      try {
        stale = Date.now() - (await stat(path)).mtimeMs > FOREIGN_STALE_MS;
      } catch {
        continue;
      }
    }
    if (!stale) continue;
    try {
      await unlink(path);
      removed++;
    } catch {
      // Gone already (another process cleaned it).
    }
  }
  return removed;
}

export function isTempName(name: string): boolean {
  return TEMP.test(name);
}

/** Writes a small file atomically: a temp file, then a rename over the old one. */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
