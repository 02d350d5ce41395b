import type { Db } from '../../src/db/database.ts';
import { createGraphqlApi, type GraphqlApi, type GraphqlApiOptions } from '../../src/graphql/yoga.ts';
import { silentLogger } from '../../src/logger.ts';

/** A GraphQL response as the tests look at it. */
export interface GqlResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly headers: Headers;
  readonly body: {
    data?: T | null;
    errors?: Array<{ message: string; extensions?: Record<string, unknown>; path?: unknown[] }>;
  };
}

/** Builds the API (no socket) on a database; authentication off unless `overrides` turn it on. */
export function createTestApi(
  db: Db,
  connectionString?: string,
  overrides: Partial<GraphqlApiOptions> = {},
): GraphqlApi {
  return createGraphqlApi({
    db,
    logger: silentLogger,
    connectionString,
    auth: { enabled: false },
    feed: { pollIntervalMs: 25 },
    ...overrides,
  });
}

/** POSTs one operation through `yoga.fetch()` (or to a URL with the global fetch). */
export async function gql<T = Record<string, unknown>>(
  target: GraphqlApi | string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResponse<T>> {
  const init = {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body: JSON.stringify({ query, variables }),
  };
  const response =
    typeof target === 'string'
      ? await fetch(target, init)
      : await target.yoga.fetch('http://localhost/graphql', init);
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as GqlResponse<T>['body'],
  };
}

/** Like {@link gql}, failing on any GraphQL error, returning `data`. */
export async function gqlData<T = Record<string, unknown>>(
  target: GraphqlApi | string,
  query: string,
  variables?: Record<string, unknown>,
  headers?: Record<string, string>,
): Promise<T> {
  const response = await gql<T>(target, query, variables, headers);
  if (response.body.errors?.length || !response.body.data) {
    throw new Error(`GraphQL errors: ${JSON.stringify(response.body.errors)}`);
  }
  return response.body.data;
}

export const PLACE_ORDER = /* GraphQL */ `
  mutation Place($input: PlaceOrderInput!) {
    placeOrder(input: $input) {
      __typename
      ... on PlaceOrderSuccess { order { id status version totalCents } }
      ... on Error { code message }
      ... on ValidationError { field }
    }
  }
`;

export const ADD_PRODUCT = /* GraphQL */ `
  mutation Add($input: AddProductInput!) {
    addProduct(input: $input) {
      __typename
      ... on AddProductSuccess { product { sku stock priceCents } }
      ... on Error { code message }
      ... on ValidationError { field }
    }
  }
`;

export const EVENT_FIELDS = 'id cursor position type streamType streamId streamVersion correlationId';

/** The fields of {@link EVENT_FIELDS}. */
export interface EventSummary {
  id: string;
  cursor: string;
  position: string;
  type: string;
  streamType: string;
  streamId: string;
  streamVersion: number;
  correlationId: string | null;
}

/** Pages through the `events` connection from a cursor to the end. */
export async function readAllEvents(
  target: GraphqlApi | string,
  after: string | null,
  filter?: Record<string, unknown>,
): Promise<EventSummary[]> {
  const all: EventSummary[] = [];
  let cursor = after;
  for (;;) {
    const data = await gqlData<{
      events: {
        edges: Array<{ node: EventSummary }>;
        pageInfo: { hasNextPage: boolean; endCursor: string | null };
      };
    }>(
      target,
      `query($after: String, $filter: EventFilter) {
        events(first: 500, after: $after, filter: $filter) { edges { node { ${EVENT_FIELDS} } } pageInfo { hasNextPage endCursor } }
      }`,
      { after: cursor, filter },
    );
    all.push(...data.events.edges.map((edge) => edge.node));
    if (!data.events.pageInfo.hasNextPage) return all;
    cursor = data.events.pageInfo.endCursor;
  }
}
