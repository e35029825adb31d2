/**
 * config.json of a checkpoint folder on disk. The schema and its checks are platform-neutral
 * (./blip-config.ts, which the browser build uses); reading the file is Node's part.
 */
import { readJsonFile } from '../io/files.js';
import { type BlipConfig, parseBlipConfig } from './blip-config.js';

export * from './blip-config.js';

export async function readBlipConfig(path: string): Promise<BlipConfig> {
  return parseBlipConfig(await readJsonFile(path, { kind: 'configJson', what: 'config.json' }), path);
}
