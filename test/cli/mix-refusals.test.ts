import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

/** Mixes the CLI refuses with exit 2 and one line naming the field (the built binary). */
const directory = mkdtempSync(join(tmpdir(), 'asi-emu-mix-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

function configWithWeights(name: string, weights: Record<string, number>): string {
  const path = join(directory, `${name}.json`);
  writeFileSync(path, JSON.stringify({ workload: { mix: { name, source: 'a test', weights } } }));
  return path;
}

describe('asi-emu bench refuses a mix that draws kick exits', () => {
  it.each([
    ['kick-only', { 'EXTERNAL_INTERRUPT:kick': 1 }],
    ['kick-mixed', { HLT: 10, 'EXTERNAL_INTERRUPT:kick': 5 }],
  ])('%s: exit 2, one line naming workload.mix.weights.EXTERNAL_INTERRUPT:kick', (name, weights) => {
    const run = runCli(['bench', '--config', configWithWeights(name, weights), '--exits', '50']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/workload\.mix\.weights\.EXTERNAL_INTERRUPT:kick: no weight/);
  });
});
