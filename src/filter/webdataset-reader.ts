import { createReadStream } from 'node:fs';
import tar from 'tar-stream';
import { BlipError } from '../errors.js';
import { FILE_LIMITS, oneLine, statRegularFile } from '../io/files.js';

/** Image members a WebDataset sample may carry, in the order one is chosen. */
export const WEBDATASET_IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp'] as const;

/** One WebDataset sample: the members sharing a `__key__`, by extension (lower case). */
export interface WebDatasetSample {
  key: string;
  members: Map<string, Buffer>;
}

/** A member's caption-sized or JSON members are small; anything else over the image cap is refused. */
const MEMBER_CAP = FILE_LIMITS.image;

/**
 * Splits a member name as webdataset does: the key is the path up to the first dot of the base
 * name, the extension everything after it ("a/b.seg.png" → key "a/b", extension "seg.png").
 */
export function splitMemberName(name: string): { key: string; ext: string } | undefined {
  const slash = name.lastIndexOf('/');
  const dot = name.indexOf('.', slash + 1);
  if (dot <= slash + 1) return undefined;
  return { key: name.slice(0, dot), ext: name.slice(dot + 1).toLowerCase() };
}

/**
 * The samples of a tar shard, streamed: members are read one at a time and a sample is yielded
 * when the key changes (webdataset's rule: a sample's members are consecutive), so memory holds
 * one sample, not the shard. Folders, links and members without an extension are skipped.
 */
export async function* readShard(path: string): AsyncGenerator<WebDatasetSample> {
  await statRegularFile(path, { what: 'a WebDataset shard' });
  const extract = tar.extract();
  const source = createReadStream(path);
  source.on('error', (e) => extract.destroy(e));
  source.pipe(extract);
  let current: WebDatasetSample | undefined;
  try {
    for await (const entry of extract) {
      const split = entry.header.type === 'file' || entry.header.type === 'contiguous-file' ? splitMemberName(entry.header.name) : undefined;
      if (!split || (entry.header.size ?? 0) > MEMBER_CAP) {
        entry.resume();
        await new Promise<void>((done) => entry.on('end', done));
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      if (current && current.key !== split.key) {
        yield current;
        current = undefined;
      }
      current ??= { key: split.key, members: new Map() };
      current.members.set(split.ext, Buffer.concat(chunks));
    }
  } catch (e) {
    if (e instanceof BlipError) throw e;
    throw new BlipError(`${oneLine(path)}: not a readable tar shard (${(e as Error)?.message ?? e})`, { subject: path, cause: e });
  } finally {
    source.destroy();
  }
  if (current) yield current;
}
