import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import { readTextFile } from '../io/files.js';
import { ApiError } from './api-error.js';

/** Addresses only this machine can reach: serving there needs no key. */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * Reads the API key (the file's first line, trimmed). Through src/io/files so a FIFO or a huge
 * file is refused like any other user-named file; the key itself never appears in messages.
 */
export async function readApiKey(path: string): Promise<string> {
  const text = await readTextFile(path, { kind: 'secret', what: 'API key file' });
  const key = text.split(/\r?\n/)[0].trim();
  if (key.length < 16) throw new UsageError(`--api-key-file ${path}: the key on its first line must be at least 16 characters`);
  return key;
}

/** The binding rule: loopback is open; any other address needs a key or an explicit opt-out. */
export function checkExposure(host: string, apiKey: string | undefined, insecureNoAuth: boolean): void {
  if (apiKey !== undefined && insecureNoAuth) throw new UsageError('serve: give either --api-key-file or --insecure-no-auth, not both');
  if (!isLoopbackHost(host) && apiKey === undefined && !insecureNoAuth) {
    throw new UsageError(`serve: --host ${host} is reachable from other machines; give --api-key-file <file> (Bearer token) or, to serve without authentication, --insecure-no-auth`);
  }
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * A Bearer-token check. Both sides are hashed first so the comparison is constant-time whatever
 * the lengths (timingSafeEqual needs equal lengths, and comparing lengths first would leak them).
 */
export function bearerAuth(apiKey: string): (authorization: string | undefined) => void {
  const expected = digest(apiKey);
  return (authorization) => {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    if (!match) throw new ApiError(401, 'unauthorized', 'this server needs an API key: send "Authorization: Bearer <key>"');
    if (!timingSafeEqual(digest(match[1]), expected)) throw new ApiError(401, 'unauthorized', 'wrong API key');
  };
}
