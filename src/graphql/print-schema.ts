import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { schema } from './schema/index.ts';

// The printer must come from the same graphql-js instance that built the schema (its `instanceof` checks
// fail across instances). Pothos, loaded by Node, gets graphql's CommonJS build; a plain `import` here can
// get the ESM build instead under a bundler-style resolver (vitest). `require` always gives the CommonJS one.
const { printSchema } = createRequire(import.meta.url)('graphql') as typeof import('graphql');

/** Where the committed SDL lives: `schema.graphql` at the repository root. */
export const SCHEMA_FILE = fileURLToPath(new URL('../../schema.graphql', import.meta.url));

/** The schema as SDL (Pothos sorts types and fields by name, so the file only changes when the API does). */
export function printSchemaSdl(): string {
  return `${printSchema(schema)}\n`;
}

// `npm run schema:print` regenerates the committed file.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(SCHEMA_FILE, printSchemaSdl());
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
}
