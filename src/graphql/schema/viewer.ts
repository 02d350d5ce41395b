import type { Principal } from '../../auth/principal.ts';
import { builder } from '../builder.ts';
import { SCOPES_ANY } from './scopes.ts';

// Who is calling, so a client (the console) can show only the actions its credentials allow without
// trying one and reading the refusal. The API still checks every field's scopes.
const ViewerRef = builder.objectRef<Principal>('Viewer').implement({
  description: 'The caller, as the API sees it.',
  fields: (t) => ({
    id: t.exposeString('id', { description: '`key:<id>`, `jwt:<sub>`, or `anonymous` when auth is off.' }),
    kind: t.exposeString('kind', { description: '`api-key`, `jwt` or `anonymous`.' }),
    scopes: t.stringList({ resolve: (principal) => [...principal.scopes].sort() }),
    expiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      resolve: (principal) => principal.expiresAt ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  viewer: t.field({
    type: ViewerRef,
    authScopes: SCOPES_ANY,
    description: 'The caller and its scopes (any caller holding a scope may ask).',
    resolve: (_root, _args, context) => context.principal,
  }),
}));
