import type { Plugin } from 'graphql-yoga';
import { hasScope } from '../auth/principal.ts';
import type { Db } from '../db/database.ts';
import { asyncApiDocument, type EventRegistry, eventContracts, listDestinations } from '../engine/index.ts';
import { type AccessControl, credentialsFromHeaders } from './access.ts';
import { isGraphQLError } from './error-masking.ts';

/** Where the AsyncAPI document is served. */
export const ASYNCAPI_PATH = '/asyncapi.json';
const SCHEMA_PATH = /^\/schemas\/([^/]+)\/(\d+)\.json$/;

/**
 * Serves the event contracts over plain HTTP GET, with the API's authentication and scope `events:read`:
 * `/asyncapi.json` (AsyncAPI 3.0 of the destinations and the `events` subscription) and `/schemas/<type>/<version>.json` (the JSON
 * Schema of one event type at its schema version). Errors are JSON `{ error }` with 401, 403, 404, 429 or 503.
 */
export function useContractRoutes(options: {
  /** Path of the GraphQL endpoint, whose `events` subscription the document describes too. */
  readonly graphqlPath: string;
  readonly db: Db;
  readonly registry: EventRegistry;
  readonly access: AccessControl;
  readonly clientAddress: (serverContext: unknown) => string;
}): Plugin {
  return {
    async onRequest({ request, url, endResponse, serverContext }) {
      const schemaMatch = SCHEMA_PATH.exec(url.pathname);
      if (url.pathname !== ASYNCAPI_PATH && !schemaMatch) return;
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        endResponse(json({ error: 'method not allowed' }, 405));
        return;
      }
      try {
        const principal = await options.access.admitRequest(
          credentialsFromHeaders(request.headers),
          options.clientAddress(serverContext),
        );
        if (!hasScope(principal, 'events:read')) {
          endResponse(json({ error: 'needs scope events:read' }, 403));
          return;
        }
      } catch (error) {
        const extensions = (error as { extensions?: { http?: { status?: number } } }).extensions;
        const status = isGraphQLError(error) ? (extensions?.http?.status ?? 401) : 503;
        endResponse(json({ error: error instanceof Error ? error.message : 'refused' }, status));
        return;
      }
      const contracts = eventContracts(options.registry.values());
      if (schemaMatch) {
        const type = decodeURIComponent(schemaMatch[1] ?? '');
        const contract = contracts.find((c) => c.type === type && c.version === Number(schemaMatch[2]));
        endResponse(
          contract
            ? json(contract.jsonSchema, 200)
            : json({ error: `no schema for ${type} v${schemaMatch[2]}` }, 404),
        );
        return;
      }
      // The endpoint as this caller reached it (its host and scheme).
      const subscriptionEndpoint = new URL(options.graphqlPath, url).toString();
      endResponse(
        json(asyncApiDocument(contracts, await listDestinations(options.db), { subscriptionEndpoint }), 200),
      );
    },
  };
}

function json(body: unknown, status: number): Response {
  return new Response(JSON.stringify(body, null, 2), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}
