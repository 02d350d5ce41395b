import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './processes.ts';

// No Docker engine here, so the image is not built: the Dockerfile is linted with dockerfile-utils (the
// linter of the Docker language server; hadolint is not packaged for Debian) and its structure checked.
const text = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(text);
const instructions = dockerfile.getInstructions();
const stages = dockerfile.getFROMs();
const lastStageStart = stages.at(-1)?.getRange().start.line ?? 0;
const finalStage = instructions.filter((instruction) => instruction.getRange().start.line >= lastStageStart);
const argumentsOf = (keyword: string, within = instructions) =>
  within
    .filter((instruction) => instruction.getKeyword() === keyword)
    .map((instruction) => instruction.getTextContent().slice(keyword.length).trim());

describe('Dockerfile', () => {
  it('has no lint findings, and the linter finds them in a broken copy', () => {
    expect(validate(text).map((diagnostic) => diagnostic.message)).toEqual([]);
    const broken = text
      .replace('EXPOSE 4000', 'EXPOSE port4000')
      .replace(/^HEALTHCHECK[\s\S]*?\n(?=\S)/m, 'HEALTHCHECK CMD\n');
    expect(validate(broken).length).toBeGreaterThanOrEqual(2);
  });

  it('installs dependencies in a build stage, not at start, and copies them into the final stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const buildStage = instructions.filter(
      (instruction) => instruction.getRange().start.line < lastStageStart,
    );
    expect(argumentsOf('RUN', buildStage).some((run) => /\bnpm ci\b/.test(run))).toBe(true);
    expect(argumentsOf('RUN', finalStage).some((run) => /\bnpm (ci|install)\b/.test(run))).toBe(false);
    for (const command of [...argumentsOf('CMD'), ...argumentsOf('ENTRYPOINT')]) {
      expect(command).not.toMatch(/npm (ci|install)/);
    }
    expect(argumentsOf('COPY', finalStage).some((copy) => /--from=\S+ \S*node_modules/.test(copy))).toBe(
      true,
    );
  });

  it('runs as a user other than root, with a healthcheck on /readyz, on Node 24', () => {
    const users = argumentsOf('USER', finalStage);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
    expect(argumentsOf('HEALTHCHECK', finalStage).join(' ')).toContain('/readyz');
    for (const from of stages) expect(from.getImageName()).toBe('node');
    for (const from of stages) expect(from.getImageTag()).toMatch(/^24\b/);
  });

  it('copies only paths that exist, and starts a file that exists', () => {
    for (const copy of argumentsOf('COPY', finalStage).filter((args) => !args.startsWith('--from'))) {
      const sources = copy.split(/\s+/).slice(0, -1);
      for (const source of sources) expect(existsSync(path.join(repoRoot, source)), source).toBe(true);
    }
    const entrypoint = JSON.parse(argumentsOf('ENTRYPOINT', finalStage).at(-1) ?? '[]') as string[];
    expect(existsSync(path.join(repoRoot, entrypoint[1] ?? 'missing'))).toBe(true);
  });
});
