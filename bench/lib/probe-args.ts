/**
 * A probe's command line (`bench/probes/*.ts`): positional numbers, each with its default, and
 * `--database-url URL` anywhere among them (default: a fresh embedded PostgreSQL).
 */
export function probeArgs<const T extends readonly number[]>(
  defaults: T,
  argv: readonly string[] = process.argv.slice(2),
): { readonly databaseUrl: string | undefined; readonly values: { -readonly [K in keyof T]: number } } {
  const args = [...argv];
  const urlIndex = args.indexOf('--database-url');
  const databaseUrl = urlIndex >= 0 ? args.splice(urlIndex, 2)[1] : undefined;
  const values = defaults.map((fallback, i) => Number(args[i] ?? fallback));
  return { databaseUrl, values: values as { -readonly [K in keyof T]: number } };
}
