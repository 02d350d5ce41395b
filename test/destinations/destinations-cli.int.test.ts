import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childEnv, cliEntry, runNode } from '../foundation/processes.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { WebhookReceiver } from '../helpers/webhook-receiver.ts';

let t: TestDatabase;
let r: WebhookReceiver;
beforeAll(async () => {
  t = await createTestDatabase();
  r = new WebhookReceiver();
  await r.start();
});
afterAll(async () => {
  await r?.stop();
  await t?.drop();
});

const postbox = (allow: string | undefined, ...args: string[]) =>
  runNode(
    [cliEntry, 'destinations', ...args],
    childEnv({
      DATABASE_URL: t.url,
      LOG_LEVEL: 'error',
      ...(allow ? { POSTBOX_DESTINATIONS_ALLOW: allow } : {}),
    }),
  );

describe('postbox destinations', () => {
  it('creates (secret printed once), lists without secrets, tests with a signed ping, pauses, resumes, rotates, replays and deletes; a private address in production is refused', {
    timeout: 180_000,
  }, async () => {
    const refused = await postbox(undefined, 'create', 'hook', '--url', r.url, '--types', 'A,B');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('private, loopback or link-local');

    const created = await postbox(
      '127.0.0.0/8',
      'create',
      'hook',
      '--kind',
      'webhook',
      '--url',
      r.url,
      '--types',
      'A,B',
      '--from',
      'beginning',
      '--header',
      'Authorization: Bearer cli-secret-token',
    );
    expect(created.code, created.stderr).toBe(0);
    const secret = /signing secret \(shown once\): (whsec_\S+)/.exec(created.stdout)?.[1];
    expect(secret).toBeDefined();
    r.secrets = [secret as string];

    const listed = await postbox(undefined, 'list', '--json');
    expect(JSON.parse(listed.stdout)).toEqual([
      expect.objectContaining({
        name: 'hook',
        kind: 'webhook',
        url: r.url,
        state: 'active',
        headerNames: ['Authorization'],
      }),
    ]);
    expect(listed.stdout).not.toContain(secret);
    expect(listed.stdout).not.toContain('cli-secret-token');

    const tested = await postbox('127.0.0.0/8', 'test', 'hook');
    expect(tested.stdout).toMatch(/^ok: 200/);
    expect(r.requests.at(-1)?.verifiedWith).toBe(0);

    const updated = await postbox(undefined, 'update', 'hook', '--types', 'C', '--max-attempts', '3');
    expect(updated.stdout).toContain('types C');
    expect((await postbox(undefined, 'pause', 'hook')).stdout).toContain('hook paused');
    expect((await postbox(undefined, 'show', 'hook')).stdout).toContain('state paused');
    expect((await postbox(undefined, 'resume', 'hook')).stdout).toContain('hook resumed');
    const rotated = await postbox(undefined, 'rotate-secret', 'hook', '--overlap-seconds', '60');
    expect(rotated.stdout).toMatch(/new signing secret \(shown once\): whsec_/);
    expect((await postbox(undefined, 'replay', 'hook')).stdout).toContain('hook rewound to the start');
    expect((await postbox(undefined, 'delete', 'hook')).stdout).toContain('hook deleted');
    const missing = await postbox(undefined, 'pause', 'hook');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('No destination named hook');
  });
});
