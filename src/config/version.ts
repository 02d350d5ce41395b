import { readFileSync } from 'node:fs';

/** Postbox's version, from its package.json (read once, at import). */
export const POSTBOX_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
