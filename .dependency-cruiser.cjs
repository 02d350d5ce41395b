/**
 * The layers of Postbox and the one direction of their imports, checked by `npm run lint`:
 *
 *   src/engine   the library (package entry "."): imports nothing of the service or the shop
 *   src/shop     the reference app: uses the engine only through its public entry, src/engine/index.ts
 *   src/…        the service (GraphQL, auth, CLI, config, embedded Postgres, observability): uses the
 *                engine only through its public entry as well
 *   console/     the operations console (browser modules, served as files by src/graphql/console-assets.ts):
 *                nothing in src imports it, and it reaches the service only through /graphql
 */
module.exports = {
  forbidden: [
    {
      name: 'engine-is-a-library',
      comment: 'The engine never imports the service or the shop: it is what a user installs.',
      severity: 'error',
      from: { path: '^src/engine/' },
      to: { path: '^src/', pathNot: '^src/engine/' },
    },
    {
      name: 'engine-public-entry-only',
      comment: 'The shop and the service use the engine as a user would: through src/engine/index.ts only.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/engine/' },
      to: { path: '^src/engine/', pathNot: '^src/engine/index\\.ts$' },
    },
    {
      name: 'shop-is-an-app',
      comment:
        'The shop does not reach into the service (GraphQL, CLI, config): the service composes the shop.',
      severity: 'error',
      from: { path: '^src/shop/' },
      to: { path: '^src/', pathNot: '^src/(shop|engine)/' },
    },
    {
      name: 'console-is-browser-code',
      comment:
        'console/ is the operations console, run by browsers and served as static files: nothing in src imports it.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^console/' },
    },
    {
      name: 'no-circular',
      comment: 'No import cycles anywhere in src.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
