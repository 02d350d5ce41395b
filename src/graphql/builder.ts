import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import ErrorsPlugin from '@pothos/plugin-errors';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin, { type AuthFailure } from '@pothos/plugin-scope-auth';
import { hasScope } from '../auth/principal.ts';
import { forbiddenError } from './access.ts';
import type { GraphQLContext } from './context.ts';

/** Every scope named by a failed check (an `$any` lists each alternative). */
function scopesOf(failure: AuthFailure): string[] {
  if ('failures' in failure) return failure.failures.flatMap(scopesOf);
  if ('scope' in failure) return [failure.scope];
  return [];
}

/**
 * The one Pothos builder. Fields are non-null unless they say otherwise; expected failures are result
 * unions (plugin-errors, see schema/errors.ts); connections come from plugin-relay (no Node interface:
 * nothing here is refetched by global id).
 *
 * Authorization is `@pothos/plugin-scope-auth`: root fields declare `authScopes` (e.g.
 * `{ 'orders:write': true }`; several keys mean any of them), checked against the request's principal
 * before the resolver runs — for subscriptions when the subscription starts. A failed check is a
 * `FORBIDDEN` GraphQL error (HTTP 403). The plugin comes first so that no other plugin's wrapper runs
 * before the check; the errors plugin does not turn it into a result, since it is not one of the
 * fields' declared error types. Authentication itself happens before execution (see access.ts).
 *
 * Fields of a list of objects that need their own rows (an order's lines, payment, events…) are loadable
 * fields (`@pothos/plugin-dataloader`): one batched query per field for a whole page, never one per row.
 */
export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  DefaultFieldNullability: false;
  AuthScopes: { 'orders:write': boolean; 'events:read': boolean; admin: boolean };
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
  };
}>({
  plugins: [ScopeAuthPlugin, ErrorsPlugin, RelayPlugin, DataloaderPlugin],
  defaultFieldNullability: false,
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (context) => ({
      'orders:write': hasScope(context.principal, 'orders:write'),
      'events:read': hasScope(context.principal, 'events:read'),
      admin: hasScope(context.principal, 'admin'),
    }),
    unauthorizedError: (_parent, _context, info, result) =>
      forbiddenError(`${info.parentType.name}.${info.fieldName}`, [...new Set(scopesOf(result.failure))]),
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
  errors: {
    defaultTypes: [],
  },
});
