import os from 'node:os';
/** Reads the machine's facts. */
export function describeMachine() {
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
/** Reads the git state of the working tree (null commit outside a git checkout). */
export async function describeCode() {
  const { execFile } = await import('node:child_process');
  const run = (args) =>
    new Promise((resolve, reject) =>
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
//# sourceMappingURL=machine.js.map
