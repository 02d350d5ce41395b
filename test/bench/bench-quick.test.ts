import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const execFileAsync = promisify(execFile);
const cli = path.resolve(import.meta.dirname, '../../src/cli/main.ts');

/** Every scenario of issue 6 has a section in the results, and each must measure ('ok'). */
const SCENARIO_KEYS = [
  'baseline',
  'append',
  'drain',
  'latency',
  'graphql_shop',
  'subscriptions',
  'notify',
  'webhook',
  'broker',
];

describe('postbox bench --quick', () => {
  let out: string;
  beforeAll(async () => {
    out = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-bench-test-'));
  });
  afterAll(async () => {
    await fs.rm(out, { recursive: true, force: true });
  });

  // A smoke run at 5 % of the quick sizes: it must complete and write its files. No timing is asserted:
  // machines are shared and noisy, and the figures of such a short run mean nothing.
  it('completes and writes a JSON with every scenario and an SVG chart', { timeout: 420_000 }, async () => {
    const { stdout } = await execFileAsync(
      process.execPath,
      [
        cli,
        'bench',
        '--quick',
        '--scale',
        '0.05',
        '--no-progress',
        '--out',
        out,
        '--name',
        'smoke',
        '--database-url',
        inject('adminUrl'),
      ],
      { maxBuffer: 10 * 1024 * 1024 },
    );
    expect(stdout).toContain('| Scenario');

    const report = JSON.parse(await fs.readFile(path.join(out, 'smoke.json'), 'utf8')) as {
      mode: string;
      machine: { cores: number; memoryBytes: number; postgres: { version: string } };
      scenarios: Record<string, { status: string }>;
      targets: unknown[];
    };
    expect(report.mode).toBe('quick');
    expect(report.machine.cores).toBeGreaterThan(0);
    expect(report.machine.memoryBytes).toBeGreaterThan(0);
    expect(report.machine.postgres.version).toMatch(/^\d+/);
    expect(Object.keys(report.scenarios).sort()).toEqual([...SCENARIO_KEYS].sort());
    for (const key of SCENARIO_KEYS) {
      expect({ key, status: report.scenarios[key]?.status }).toEqual({ key, status: 'ok' });
    }
    expect(report.targets.length).toBeGreaterThan(0);

    const svg = await fs.readFile(path.join(out, 'smoke.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
  });
});
