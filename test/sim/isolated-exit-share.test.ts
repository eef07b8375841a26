import { describe, expect, it } from 'vitest';
import { policies } from '../../src/policy/index.js';
import { simulate, testConfig } from './helpers.js';

/**
 * isolatedExitShare counts the exits handled entirely in kvm:N. An exit that goes to the VMM leaves
 * isolation (the VMM is userspace with host secrets mapped: asi kicks before it), even when its
 * handler touched nothing outside kvm:N. Seed 1.
 */
const vmmOnly = {
  name: 'vmm-only',
  source: 'a test: port I/O and MMIO both emulated in the VMM',
  weights: { 'IO_INSTRUCTION:userspace': 1, 'EPT_MISCONFIG:userspace': 1 },
};

describe('isolatedExitShare', () => {
  it('a mix of VMM exits only reports 0% handled in isolation, while asi kicks on them', () => {
    const result = simulate(testConfig({ workload: { mix: vmmOnly }, run: { exits: 1000 } }), policies.asi);
    expect(result.isolatedExitShare).toBe(0);
    expect(result.kicksPer1kExits).toBeGreaterThan(500);
    expect(result.violationRecords).toEqual([]);
  });

  it('a mix of in-kernel exits only still reports 100%', () => {
    const result = simulate(
      testConfig({
        workload: {
          mix: { name: 'in-kernel', source: 'a test', weights: { 'IO_INSTRUCTION:in-kernel': 1, CPUID: 1 } },
        },
        run: { exits: 1000 },
      }),
      policies.asi,
    );
    expect(result.isolatedExitShare).toBe(1);
    expect(result.kicksPer1kExits).toBe(0);
  });

  it('a half-VMM mix reports about half', () => {
    const result = simulate(
      testConfig({
        workload: {
          mix: { name: 'half', source: 'a test', weights: { 'IO_INSTRUCTION:userspace': 1, CPUID: 1 } },
        },
        run: { exits: 2000 },
      }),
      policies.asi,
    );
    expect(result.isolatedExitShare).toBeGreaterThan(0.4);
    expect(result.isolatedExitShare).toBeLessThan(0.6);
  });
});
