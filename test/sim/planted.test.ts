import { describe, expect, it } from 'vitest';
import { asi } from '../../src/policy/asi.js';
import { plantedBugs } from '../../src/policy/planted.js';
import { brokenIds, simulate, testConfig } from './helpers.js';

/**
 * Issue 3 (and 5): each planted-bug policy is caught on the invariant(s) its mistake breaks, within a
 * bounded number of seeds (30), on a machine and workload that can show it.
 */
const seedsMax = 30;

describe.each(plantedBugs.map((bug) => [bug.policy.name, bug] as const))('planted bug %s', (name, bug) => {
  it(`is caught on ${bug.breaks.join(' or ')} within ${seedsMax} seeds: ${bug.mistake}`, () => {
    const smt = (bug.needs.smtMin ?? 2) > 2 ? 4 : 2;
    const mix = bug.needs.vmmExits
      ? {
          name: 'vmm-heavy',
          source: 'test: 10% userspace MMIO',
          weights: { 'EPT_MISCONFIG:userspace': 10, MSR_WRITE: 90 },
        }
      : 'sysbench-cpu';
    let caughtAt = -1;
    let broken: string[] = [];
    for (let seed = 1; seed <= seedsMax && caughtAt < 0; seed++) {
      const config = testConfig({
        machine: { cores: 1, smt, vms: [{ vcpus: smt, guestMemoryMiB: 1 }] },
        workload: { mix, nmiIntervalCycles: bug.needs.nmi ? 40_000 : 0 },
        run: { exits: 1500, seed, stopOnViolation: true },
      });
      const result = simulate(config, bug.policy);
      broken = brokenIds(result);
      if (broken.some((id) => bug.breaks.includes(id))) caughtAt = seed;
    }
    expect(
      caughtAt,
      `${name} not caught in ${seedsMax} seeds (last run broke: ${broken.join(',') || 'nothing'})`,
    ).toBeGreaterThan(0);
  });
});

describe('the planted bugs are not caught by accident', () => {
  it('the same scenarios under asi (the policy each bug corrupts) break nothing', () => {
    for (const smt of [2, 4]) {
      for (let seed = 1; seed <= 10; seed++) {
        const config = testConfig({
          machine: { cores: 1, smt, vms: [{ vcpus: smt, guestMemoryMiB: 1 }] },
          workload: { nmiIntervalCycles: 40_000 },
          run: { exits: 1500, seed },
        });
        expect(brokenIds(simulate(config, asi)), `asi, smt ${smt}, seed ${seed}`).toEqual([]);
      }
    }
  });
});
