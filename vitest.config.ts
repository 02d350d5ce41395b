import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql 16 ships CommonJS (`main`) and ESM (`module`): Node, and every dependency vitest loads through
    // Node (yoga, Pothos, envelop), gets the CommonJS build, while vite would hand our sources the ESM one.
    // Two copies of graphql break its `instanceof` checks ("Cannot use GraphQLSchema from another module or
    // realm") as soon as a source file calls into graphql with the schema; resolve it as Node does.
    alias: [{ find: /^graphql$/, replacement: createRequire(import.meta.url).resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Forks: tests spawn and SIGKILL child processes and start graphile-worker; isolation per file is simpler.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
  },
});
