import os from 'node:os';

/** The machine a run was measured on (the server's facts are added by the runner). */
export interface MachineFacts {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryBytes: number;
  readonly memoryGiB: number;
  readonly loadAverage: readonly number[];
  readonly os: string;
  readonly node: string;
  readonly hostname: string;
}

/** Reads the machine's facts. */
export function describeMachine(): MachineFacts {
  const cpus = os.cpus();
  return {
    cores: os.availableParallelism?.() ?? cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryBytes: os.totalmem(),
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg().map((value) => Math.round(value * 100) / 100),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    hostname: os.hostname(),
  };
}

/** The code that was measured: commit, and whether the engine's files differed from it. */
export interface CodeFacts {
  readonly commit: string | null;
  /** Files under src/ or migrations/ changed against the commit (a bench of uncommitted engine code). */
  readonly uncommitted: readonly string[];
}

/** Reads the git state of the working tree (null commit outside a git checkout). */
export async function describeCode(): Promise<CodeFacts> {
  const { execFile } = await import('node:child_process');
  const run = (args: string[]) =>
    new Promise<string>((resolve, reject) =>
      execFile('git', args, { encoding: 'utf8' }, (error, stdout) =>
        error ? reject(error) : resolve(stdout),
      ),
    );
  try {
    const commit = (await run(['rev-parse', 'HEAD'])).trim();
    const status = await run(['status', '--porcelain', '--', 'src', 'migrations']);
    const uncommitted = status
      .split('\n')
      .filter((line) => line.trim())
      .map((line) => line.slice(3));
    return { commit, uncommitted };
  } catch {
    return { commit: null, uncommitted: [] };
  }
}
