import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const execFileAsync = promisify(execFile);
const cli = path.resolve(import.meta.dirname, '../../src/cli/main.ts');

/** Every system of the comparison: Postbox and each peer module in bench/peers/. */
const SYSTEMS = ['postbox', 'emmett', 'pgboss', 'pgboss_fifo', 'graphile_worker'];

interface LatencySystem {
  version: string;
  committed: number;
  missing: number;
  p50: { rounds: number[] };
}

describe('postbox bench --peers --quick --only latency', () => {
  let out: string;
  beforeAll(async () => {
    out = await fs.mkdtemp(path.join(os.tmpdir(), 'postbox-bench-peers-test-'));
  });
  afterAll(async () => {
    await fs.rm(out, { recursive: true, force: true });
  });

  // The latency scenario is the cheapest one that runs every system's whole path: its append inside the
  // app's transaction and its consumer inserting the effect rows. At 10 % of the quick durations it checks
  // that the comparison completes and records every system; no timing is asserted (shared machines). It
  // runs on the bench's own embedded server, not the shared test server: there, another session's long
  // transaction holds back the read horizon of the log readers (Postbox's and Emmett's), and a window of
  // a fraction of a second would be judged by someone else's workload.
  it('completes and writes a JSON with every system, its version and the summary', {
    timeout: 120_000,
  }, async () => {
    const { stdout } = await execFileAsync(
      process.execPath,
      [
        cli,
        'bench',
        '--peers',
        '--quick',
        '--only',
        'latency',
        '--scale',
        '0.1',
        '--no-progress',
        '--out',
        out,
        '--name',
        'peers',
      ],
      { maxBuffer: 10 * 1024 * 1024 },
    );
    expect(stdout).toContain('## Peers: latency');
    expect(stdout).toContain('## Peers: Postbox ÷ best peer');

    const report = JSON.parse(await fs.readFile(path.join(out, 'peers.json'), 'utf8')) as {
      mode: string;
      peers: Array<{ key: string; version: string }>;
      scenarios: Record<
        string,
        { status: string; systems?: Record<string, LatencySystem>; comparisons?: unknown[] }
      >;
    };
    expect(report.mode).toBe('quick');
    expect(report.peers.map((peer) => peer.key)).toEqual(SYSTEMS);
    for (const peer of report.peers) expect(peer.version).toMatch(/\d+\.\d+/);
    expect(report.scenarios.peers_append?.status).toBe('skipped');
    const latency = report.scenarios.peers_latency;
    expect(latency?.status).toBe('ok');
    expect(Object.keys(latency?.systems ?? {}).sort()).toEqual([...SYSTEMS].sort());
    for (const key of SYSTEMS) {
      const system = latency?.systems?.[key];
      // Every system committed events in its window and its consumer started handlers for them.
      expect({ key, committed: (system?.committed ?? 0) > 0 }).toEqual({ key, committed: true });
      expect({
        key,
        handled: (system?.missing ?? Number.POSITIVE_INFINITY) < (system?.committed ?? 0),
      }).toEqual({
        key,
        handled: true,
      });
    }
    const summary = report.scenarios.peers_summary;
    expect(summary?.status).toBe('ok');
    expect(summary?.comparisons?.length).toBe(2); // latency p50 and p99
  });
});
