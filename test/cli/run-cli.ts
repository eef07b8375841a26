import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { expect } from 'vitest';

/** The built CLI (npm test builds first): dist/src/cli/main.js, run as a user would run it. */
export const cliPath = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { cwd?: string; timeoutMs?: number } = {}): CliRun {
  const result = spawnSync(process.execPath, [cliPath, ...args], {
    cwd: options.cwd,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
    env: { ...process.env, CI: 'true' },
  });
  if (result.error) throw result.error;
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const require = createRequire(import.meta.url);

/**
 * A bench run's JSON file, read and checked against the published schema (found as a user finds it,
 * through the package's exports) before a test reads any field of it.
 */
export function schemaCheckedBenchJson(path: string): { results: unknown[]; mixes: { class: string }[] } {
  const json = JSON.parse(readFileSync(path, 'utf8'));
  const validate = new Ajv({ allErrors: true, strict: true }).compile(
    JSON.parse(readFileSync(require.resolve('asi-emu/schema/bench.schema.json'), 'utf8')),
  );
  expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
  return json;
}
