// The console's only way to the data: the public GraphQL API at /graphql, with the user's API key.
import { useEffect, useRef, useState } from 'preact/hooks';

const KEY_STORAGE = 'postbox.apiKey';

/** How often live views poll, ms. */
export const POLL_MS = 2000;

/** The API key kept for this tab (sessionStorage: gone when the tab closes), or null. */
export const storedKey = () => sessionStorage.getItem(KEY_STORAGE);
export const storeKey = (key) => sessionStorage.setItem(KEY_STORAGE, key);
export const forgetKey = () => sessionStorage.removeItem(KEY_STORAGE);

/** A GraphQL error the API answered with; `code` is its `extensions.code` (FORBIDDEN, UNAUTHENTICATED…). */
export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/** True for an error that says the schema has no such field (an optional feature this server lacks). */
export const isSchemaMismatch = (error) =>
  error instanceof ApiError &&
  (error.code === 'GRAPHQL_VALIDATION_FAILED' || /Cannot query field/.test(error.message));

/**
 * Runs one operation and returns its data, or throws an ApiError (the first error) when the API answers
 * with errors. Plain `application/json` so expected refusals come back as GraphQL errors in the body.
 */
export async function gql(query, variables = {}) {
  const body = await gqlResponse(query, variables);
  const first = body.errors?.[0];
  if (first) throw new ApiError(first.message, first.extensions?.code ?? 'ERROR');
  return body.data;
}

/** The whole GraphQL response `{ data, errors }` (partial data with field errors); throws only when unreachable. */
export async function gqlResponse(query, variables = {}) {
  const key = storedKey();
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError(`The server cannot be reached (${error.message})`, 'NETWORK');
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The server answered ${response.status} without a GraphQL body`, 'HTTP');
  }
  return body;
}

/**
 * Calls `load` now and then every `intervalMs` after each answer (never two at once; skipped while the tab is
 * hidden). Returns { data, error, refresh }. `deps` restart it.
 */
export function usePoll(load, intervalMs, deps) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const tick = useRef(() => {});
  useEffect(() => {
    let stopped = false;
    let timer;
    const run = async () => {
      clearTimeout(timer);
      if (!document.hidden) {
        try {
          const data = await load();
          if (!stopped) setState({ data, error: undefined });
        } catch (error) {
          if (!stopped) setState((previous) => ({ data: previous.data, error }));
        }
      }
      if (!stopped && intervalMs > 0) timer = setTimeout(run, intervalMs);
    };
    tick.current = run;
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, deps);
  return { ...state, refresh: () => tick.current() };
}
