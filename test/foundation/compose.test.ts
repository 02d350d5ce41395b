import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/config.ts';
import { repoRoot } from './processes.ts';

interface ComposeService {
  image?: string;
  command?: string | string[];
  environment?: Record<string, string> | string[];
  ports?: Array<string | { target: number; published: string | number }>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
  volumes?: string[];
}

const compose = parse(readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
};

/** `environment` as a map, whichever of the two compose spellings (map or `KEY=value` list) is used. */
function environmentOf(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
  return Object.fromEntries(
    env.map((entry) => {
      const at = entry.indexOf('=');
      return [entry.slice(0, at), entry.slice(at + 1)];
    }),
  );
}

function commandOf(service: ComposeService): string {
  return Array.isArray(service.command) ? service.command.join(' ') : (service.command ?? '');
}

describe('docker-compose.yml', () => {
  const postgres = compose.services.postgres;
  const postbox = compose.services.postbox;

  it('has a postgres and a postbox service', () => {
    expect(Object.keys(compose.services)).toEqual(expect.arrayContaining(['postgres', 'postbox']));
  });

  it('runs the official postgres image with a pg_isready healthcheck and a data volume', () => {
    expect(postgres?.image).toMatch(/^postgres:\d+/);
    const test = postgres?.healthcheck?.test;
    expect(Array.isArray(test) ? test.join(' ') : test).toContain('pg_isready');
    expect(postgres?.volumes?.some((volume) => volume.endsWith(':/var/lib/postgresql/data'))).toBe(true);
    expect(environmentOf(postgres ?? {}).POSTGRES_PASSWORD).toBeTruthy();
  });

  it('runs postbox on Node 24 against the postgres service, once it is healthy', () => {
    expect((postbox as { build?: string } | undefined)?.build).toBe('.');
    expect(readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8')).toMatch(/^FROM node:24\b/m);
    const env = environmentOf(postbox ?? {});
    const url = new URL(env.DATABASE_URL ?? '');
    expect(url.hostname).toBe('postgres');
    expect(url.port).toBe('5432');
    const pgEnv = environmentOf(postgres ?? {});
    expect(decodeURIComponent(url.username)).toBe(pgEnv.POSTGRES_USER ?? 'postgres');
    expect(decodeURIComponent(url.password)).toBe(pgEnv.POSTGRES_PASSWORD);
    expect(url.pathname).toBe(`/${pgEnv.POSTGRES_DB ?? pgEnv.POSTGRES_USER ?? 'postgres'}`);
    expect(postbox?.depends_on).toMatchObject({ postgres: { condition: 'service_healthy' } });
  });

  it('migrates, then serves', () => {
    const command = commandOf(postbox ?? {});
    const migrateAt = command.indexOf('src/cli/main.ts migrate');
    const serveAt = command.indexOf('src/cli/main.ts serve');
    expect(migrateAt).toBeGreaterThan(-1);
    expect(serveAt).toBeGreaterThan(migrateAt);
  });

  it('publishes port 4000 on 127.0.0.1 unless changed, and listens on every interface inside the container', () => {
    const env = environmentOf(postbox ?? {});
    const published = (postbox?.ports ?? []).map((port) =>
      typeof port === 'string' ? port : `${port.published}:${port.target}`,
    );
    // The compose file's own interpolation syntax, as written in the file.
    expect(published).toEqual([`\${POSTBOX_PUBLISH_ADDRESS:-127.0.0.1}:4000:4000`]);
    expect(interpolate(published[0] ?? '', {})).toBe('127.0.0.1:4000:4000');
    expect(interpolate(published[0] ?? '', { POSTBOX_PUBLISH_ADDRESS: '0.0.0.0' })).toBe('0.0.0.0:4000:4000');
    expect(env.HOST).toBe('0.0.0.0');
    expect(env.PORT ?? '4000').toBe('4000');
  });

  it('sets only environment variables Postbox accepts', () => {
    // loadConfig throws a ConfigError naming the variable if the compose file sets a bad value.
    const config = loadConfig({ ...environmentOf(postbox ?? {}), POSTBOX_COMPOSE_KEY: '' });
    expect(config.databaseUrl).toBe(environmentOf(postbox ?? {}).DATABASE_URL);
    expect(config.port).toBe(4000);
    expect(config.auth).toBe(true);
  });

  it('requires auth and an operator-chosen admin key: no fixed key in the file', () => {
    const env = environmentOf(postbox ?? {});
    expect(env.POSTBOX_AUTH).toBe('on');
    // Compose refuses to start without it (`${VAR:?message}`), naming how to make one.
    expect(env.POSTBOX_COMPOSE_KEY).toMatch(/^\$\{POSTBOX_COMPOSE_KEY:\?.+\}$/);
    expect(() => interpolate(env.POSTBOX_COMPOSE_KEY ?? '', {})).toThrow(/POSTBOX_COMPOSE_KEY/);
    expect(readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8')).not.toMatch(/pbx_[a-z0-9]{10}_/);
    const command = String(postbox?.command ?? '');
    expect(command).toMatch(/keys create --name compose --scopes admin --key/);
    expect(command.indexOf('keys create')).toBeLessThan(command.indexOf('serve'));
  });
});

/**
 * The subset of compose's variable interpolation the file uses: `${VAR:-default}` and `${VAR:?error}`
 * (https://docs.docker.com/reference/compose-file/interpolation/).
 */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(
    /\$\{([A-Z_]+)(?::([-?])([^}]*))?\}/g,
    (_match, name: string, kind?: string, arg?: string) => {
      const value = env[name];
      if (value) return value;
      if (kind === '-') return arg ?? '';
      if (kind === '?') throw new Error(`${name}: ${arg}`);
      return '';
    },
  );
}
