import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, schemaCheckedBenchJson } from './run-cli.js';

/**
 * Issue 22 item 4 through the built binary: the user mixes are listed with their class, a user mix runs
 * under none and linux-asi and its overhead is the user work done against none (the JSON says so), and
 * a policy without a userspace class is refused (exit 2).
 */

describe('the userspace class on the CLI (issue 22 item 4)', () => {
  it('mixes --json gives every mix its class and exitsPerSecond; the table shows the class', () => {
    const run = runCli(['mixes', '--json']);
    expect(run.code).toBe(0);
    const mixes = JSON.parse(run.stdout) as { name: string; class: string; exitsPerSecond: number | null }[];
    for (const mix of mixes) {
      expect(['kvm', 'user'], mix.name).toContain(mix.class);
      expect(mix).toHaveProperty('exitsPerSecond');
    }
    expect(mixes.find((mix) => mix.name === 'fio-randread-tmpfs')).toMatchObject({
      class: 'user',
      exitsPerSecond: 1_003_102,
    });
    expect(mixes.find((mix) => mix.name === 'kernel-build')?.class).toBe('user');
    expect(mixes.find((mix) => mix.name === 'sysbench-cpu')?.class).toBe('kvm');
    const table = runCli(['mixes', 'fio-randread-tmpfs']);
    expect(table.stdout).toMatch(/class: user \(a host process/);
  });

  it('bench --policies none,linux-asi --mix fio-randread-tmpfs: the user work against none, workOf user', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'asi-emu-user-class-')), 'out.json');
    const run = runCli([
      'bench',
      '--policies',
      'none,linux-asi',
      '--mix',
      'fio-randread-tmpfs',
      '--exits',
      '1500',
      '--json',
      out,
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const json = schemaCheckedBenchJson(out);
    const results = json.results as {
      policy: string;
      workOf: string;
      overheadVsNone: number;
      overheadVsKvmDefault: number | null;
      asiExits: { pageFault: number };
    }[];
    expect(results.map((result) => result.policy)).toEqual(['none', 'linux-asi']);
    for (const result of results) {
      expect(result.workOf).toBe('user');
      // KVM's shipped mitigations act at VM entry, which a host process never makes: no such baseline.
      expect(result.overheadVsKvmDefault).toBeNull();
    }
    expect(results[0].overheadVsNone).toBe(0);
    expect(results[1].overheadVsNone).toBeGreaterThan(0);
    expect(results[1].asiExits.pageFault).toBeGreaterThan(0);
    expect(json.mixes[0].class).toBe('user');
  });

  it('a policy without a userspace class is refused on a user mix (exit 2, naming --policies and what is accepted)', () => {
    const run = runCli(['bench', '--policies', 'none,asi', '--mix', 'fio-randread-tmpfs', '--exits', '100']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--policies: none or a today's-ASI policy/);
    expect(run.stderr).toMatch(/asi has no userspace class/);
  });

  it("a policy module runs a user mix when it carries today's-ASI settings, and is refused without them", () => {
    const fixtures = join(import.meta.dirname, '..', 'fixtures');
    const args = [
      'bench',
      '--policies',
      'none',
      '--mix',
      'fio-randread-tmpfs',
      '--exits',
      '100',
      '--policy-module',
    ];
    const withSettings = runCli([...args, join(fixtures, 'linux-asi-user-taint-policy.mjs')]);
    expect(withSettings.stderr).toBe('');
    expect(withSettings.code).toBe(0);
    const without = runCli([...args, join(fixtures, 'crash-policy.mjs')]);
    expect(without.code).toBe(2);
    expect(without.stderr).toMatch(/crash-at-entry has no userspace class/);
  });
});
