import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Parser } from '@asyncapi/parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDestination } from '../../src/engine/index.ts';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { createTestApi, gqlData } from '../graphql/graphql-fixtures.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';

let t: TestDatabase;
let out: string;
beforeAll(async () => {
  t = await createTestDatabase();
  out = await mkdtemp(path.join(os.tmpdir(), 'postbox-contracts-'));
});
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
  await t?.drop();
});

describe('postbox contracts', () => {
  it('writes asyncapi.json (valid AsyncAPI 3.0 with a channel per destination) and one JSON Schema per shop event type', async () => {
    await createDestination(
      t.db,
      {
        name: 'crm',
        kind: 'webhook',
        url: 'https://crm.example.com/hooks',
        filter: { types: ['OrderPlaced'] },
      },
      { addressPolicy: { allowPrivate: true } },
    );
    const result = await runNode(
      [cliEntry, 'contracts', '--out', out],
      childEnv({ DATABASE_URL: t.url, LOG_LEVEL: 'error' }),
    );
    expect(result.code, result.stderr).toBe(0);
    const text = await readFile(path.join(out, 'asyncapi.json'), 'utf8');
    const { document, diagnostics } = await new Parser().parse(text);
    expect(diagnostics.filter((d) => d.severity === 0)).toEqual([]);
    expect(
      document
        ?.channels()
        .all()
        .map((c) => c.id()),
    ).toEqual(['crm']);
    const types = await readdir(path.join(out, 'schemas'));
    expect(types).toContain('OrderPlaced');
    const schema = JSON.parse(
      await readFile(
        path.join(
          out,
          'schemas',
          'OrderPlaced',
          (await readdir(path.join(out, 'schemas', 'OrderPlaced')))[0] as string,
        ),
        'utf8',
      ),
    );
    expect(schema).toMatchObject({
      type: 'object',
      $id: expect.stringMatching(/^\/schemas\/OrderPlaced\/\d+\.json$/),
    });
  }, 60_000);

  it('GraphQL: eventTypes { name versions { version jsonSchema } } and the asyncApi document', async () => {
    const api = createTestApi(t.db, t.url);
    try {
      const data = await gqlData<{
        eventTypes: { name: string; versions: { version: number; jsonSchema: { $id: string } }[] }[];
        asyncApi: unknown;
      }>(api, '{ eventTypes { name versions { version jsonSchema } } asyncApi }');
      const placed = data.eventTypes.find((type) => type.name === 'OrderPlaced');
      expect(placed?.versions[0]?.jsonSchema.$id).toBe(
        `/schemas/OrderPlaced/${placed?.versions[0]?.version}.json`,
      );
      const { diagnostics } = await new Parser().parse(JSON.stringify(data.asyncApi));
      expect(diagnostics.filter((d) => d.severity === 0)).toEqual([]);
    } finally {
      await api.close?.();
    }
  }, 60_000);

  it('GET /asyncapi.json and /schemas/<type>/<version>.json need events:read', async () => {
    const api = createTestApi(t.db, t.url);
    const secured = createTestApi(t.db, t.url, { auth: { enabled: true } });
    try {
      const document = await api.yoga.fetch('http://postbox.test/asyncapi.json');
      expect(document.status).toBe(200);
      const { document: parsed, diagnostics } = await new Parser().parse(await document.text());
      expect(diagnostics.filter((d) => d.severity === 0)).toEqual([]);
      // The subscription at the address this caller reached.
      expect(parsed?.channels().get('events-subscription')?.address()).toBe('/graphql');
      expect(parsed?.servers().get('graphql-ws')?.host()).toBe('postbox.test');
      const types = (
        await gqlData<{ eventTypes: { name: string; versions: { version: number }[] }[] }>(
          api,
          '{ eventTypes { name versions { version } } }',
        )
      ).eventTypes;
      const placed = types.find((type) => type.name === 'OrderPlaced');
      const schema = await api.yoga.fetch(
        `http://postbox.test/schemas/OrderPlaced/${placed?.versions[0]?.version}.json`,
      );
      expect(schema.status).toBe(200);
      expect(await schema.json()).toMatchObject({ type: 'object' });
      expect((await api.yoga.fetch('http://postbox.test/schemas/OrderPlaced/999.json')).status).toBe(404);
      expect((await secured.yoga.fetch('http://postbox.test/asyncapi.json')).status).toBe(401);
    } finally {
      await api.close?.();
      await secured.close?.();
    }
  }, 60_000);
});
