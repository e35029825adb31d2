// Both page modes read this server's JSON answers the same way.

/**
 * The JSON body of `response` (null when it has none: a proxy's HTML error page, a dropped
 * connection) and, for an error, one line saying what went wrong: the API's own message when
 * there is one, else the HTTP status.
 */
export async function readReply(response) {
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // no JSON body: `detail` falls back to the status
  }
  const detail = payload && payload.error ? payload.error.message : `${response.status} ${response.statusText}`;
  return { payload, detail };
}
