/**
 * The Hub's failures as the user sees them: `HubError` with a `kind` callers can branch on, and
 * the messages that say what to do (set HF_TOKEN, accept a gated repo, check HF_ENDPOINT, use
 * the cache or a local folder). `NetworkFailure` is the internal signal that the Hub could not be
 * reached, which the entry point turns into a fallback to the cache or a `network` HubError.
 */
import { BlipError } from '../../errors.js';
import { DEFAULT_ENDPOINT, type HubContext } from './reference.js';

export type HubErrorKind = 'network' | 'offline' | 'auth' | 'not-found' | 'integrity' | 'protocol' | 'http';

/** A Hub or cache problem the user can fix; `kind` says which, for callers that branch on it. */
export class HubError extends BlipError {
  readonly kind: HubErrorKind;
  constructor(kind: HubErrorKind, message: string, options?: { subject?: string; cause?: unknown }) {
    super(message, options);
    this.name = 'HubError';
    this.kind = kind;
  }
}


/** The Hub could not be reached (connection, DNS, timeout, reset, 5xx). Turned into a HubError at the top. */
export class NetworkFailure extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    readonly retryable: boolean,
    cause?: unknown,
  ) {
    super(`${url}: ${reason}`, cause === undefined ? undefined : { cause });
  }
}


const LOCAL_HINT = 'or use a local folder with the model files: --model ./path/to/folder';

/** A Hub answer other than success, in words that say what to do (gated, private, missing, bad token). */
export function statusError(ctx: HubContext, status: number, code: string | null, hubMessage: string | undefined, file?: string, cause?: unknown): HubError {
  const what = `${ctx.repo}@${ctx.revision}${file ? ` (${file})` : ''}`;
  const said = hubMessage ? `: "${hubMessage}"` : '';
  const opt = { subject: ctx.repo, cause };
  if (code === 'GatedRepo') {
    return new HubError(
      'auth',
      `${ctx.repo} is a gated repo${said}: accept its conditions at ${ctx.endpoint}/${ctx.repo} while logged in, ` +
        `then set HF_TOKEN to an access token of that account`,
      opt,
    );
  }
  if (code === 'RepositoryNotFound' || code === 'RevisionNotFound' || (status === 404 && file === undefined)) {
    return new HubError(
      'not-found',
      `no such repo or revision on ${ctx.endpoint}: ${ctx.repo}@${ctx.revision}${hubMessage ? ` ("${hubMessage}")` : ''}` +
        (ctx.token === undefined ? '. If the repo is private, set HF_TOKEN to an access token that can read it' : ''),
      opt,
    );
  }
  if (status === 404) {
    return new HubError('not-found', `${ctx.repo}@${ctx.revision} has no file ${file}${said}`, opt);
  }
  if (status === 401 || status === 403) {
    return new HubError(
      'auth',
      ctx.token === undefined
        ? `${ctx.endpoint} refused ${what} (HTTP ${status}${said}): the repo is private or gated. ` +
            `If you have access, set HF_TOKEN to an access token (${DEFAULT_ENDPOINT}/settings/tokens)`
        : `${ctx.endpoint} refused the access token for ${what} (HTTP ${status}${said}): ` +
            `check that HF_TOKEN holds a valid token that can read this repo`,
      opt,
    );
  }
  return new HubError('http', `${ctx.endpoint} answered HTTP ${status} for ${what}${said}`, opt);
}

/** The Hub could not be reached and the cache cannot stand in. */
export function networkError(ctx: HubContext, f: NetworkFailure, missing: string[] | undefined): HubError {
  const cache =
    missing === undefined
      ? `the cache (${ctx.storage}) has nothing for it`
      : `the cache (${ctx.storage}) has only part of it (missing: ${missing.join(', ')})`;
  return new HubError(
    'network',
    `could not reach the Hugging Face Hub at ${ctx.endpoint} for ${ctx.repo}@${ctx.revision} ` +
      `(${f.url.split('?')[0]}: ${f.reason}), and ${cache}. Check the network or proxy, set HF_ENDPOINT to a reachable mirror, ` +
      `${LOCAL_HINT}. With a filled cache, HF_HUB_OFFLINE=1 skips the network.`,
    { subject: ctx.repo, cause: f },
  );
}

/** HF_HUB_OFFLINE is set and the cache cannot stand in. */
export function offlineError(ctx: HubContext, missing: string[], commit?: string): HubError {
  const cache =
    commit === undefined
      ? `the cache (${ctx.storage}) has no copy of ${ctx.repo}@${ctx.revision}`
      : `the cache (${ctx.storage}) has only part of ${ctx.repo}@${ctx.revision} (commit ${commit.slice(0, 10)}; missing: ${missing.join(', ')})`;
  return new HubError(
    'offline',
    `offline mode is on (HF_HUB_OFFLINE), so nothing can be downloaded, and ${cache}. ` +
      `Run once with network access (HF_HUB_OFFLINE unset) to fill the cache, ${LOCAL_HINT}`,
    { subject: ctx.repo },
  );
}
