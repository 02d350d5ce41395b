import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Cheap, synchronous check before touching testcontainers: without any sign of a Docker runtime its
 * strategies fail anyway, and some of them wait on timeouts first.
 */
export function dockerRuntimeLikely(): boolean {
  if (process.env.DOCKER_HOST || process.env.TESTCONTAINERS_HOST_OVERRIDE) return true;
  const candidates = ['/var/run/docker.sock', path.join(os.homedir(), '.docker/run/docker.sock')];
  if (process.env.XDG_RUNTIME_DIR) candidates.push(path.join(process.env.XDG_RUNTIME_DIR, 'docker.sock'));
  return (
    candidates.some((file) => existsSync(file)) ||
    existsSync(path.join(os.homedir(), '.testcontainers.properties'))
  );
}
