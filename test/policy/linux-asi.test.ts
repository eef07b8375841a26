import { describe, expect, it } from 'vitest';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { policies } from '../../src/policy/index.js';
import { linuxAsiPolicy } from '../../src/policy/linux-asi.js';
import { testConfig } from '../sim/helpers.js';

/**
 * Today's Linux ASI as a policy (issue 22 items 1, 2 and 5): the sibling protocol and the context-switch
 * rule are parameters; the taints decide the flushes; upstream (no protocol) is caught under SMT.
 */
const busy = testConfig({
  machine: { cores: 2, smt: 2, vms: [{ vcpus: 4, guestMemoryMiB: 1 }] },
  workload: { nmiIntervalCycles: 60_000, irqIntervalCycles: 40_000 },
  run: { exits: 600, seed: 11 },
});
const halting = testConfig({ workload: { mix: 'idle-tracing' }, run: { exits: 400, seed: 3 } });

const broken = (violations: Record<string, number>) =>
  Object.entries(violations)
    .filter(([, count]) => count > 0)
    .map(([id]) => id);

describe('linux-asi composes with the 2019 sibling protocols', () => {
  it('kick-and-wait (linux-asi), stun and ipi-only run; kick-and-wait and stun hold every invariant, ipi-only and upstream break sibling exclusion', () => {
    const kickAndWait = runSim(busy, policies['linux-asi']);
    const stun = runSim(busy, linuxAsiPolicy({ siblingProtocol: 'stun' }));
    const ipiOnly = runSim(busy, linuxAsiPolicy({ siblingProtocol: 'ipi-only' }));
    const upstream = runSim(busy, policies['linux-asi-upstream']);
    expect(broken(kickAndWait.violations)).toEqual([]);
    expect(broken(stun.violations)).toEqual([]);
    expect(broken(ipiOnly.violations)).toContain('INV-1');
    expect(broken(upstream.violations)).toContain('INV-1');
    // Each kicks as its protocol says; upstream never.
    expect(kickAndWait.kicksPer1kExits).toBeGreaterThan(0);
    expect(stun.kicksPer1kExits).toBeGreaterThan(0);
    expect(upstream.kicksPer1kExits).toBe(0);
    for (const result of [kickAndWait, stun, ipiOnly, upstream]) {
      // The taints decide: a fault's asi_exit sets KERNEL_DATA, whose asi_enter flushes the L1D; the
      // guest's GUEST_CONTROL makes asi_exit IBPB. On sysbench-cpu the handlers that fault are the host
      // device interrupts (the page cache), which land in the critical section: interrupt exits.
      expect(result.asiExits.interrupt, result.policy).toBeGreaterThan(0);
      expect(result.l1dFlushes, result.policy).toBeGreaterThan(0);
      expect(result.ibpbs, result.policy).toBeGreaterThan(0);
    }
    expect(policies['linux-asi'].linuxAsi?.siblingProtocol).toBe('kick-and-wait');
    expect(policies['linux-asi-upstream'].linuxAsi?.siblingProtocol).toBe('none');
  });

  it('every-switch (upstream) exits at each halt and pays the flush on the way back; mm-switch (Google) does not', () => {
    const everySwitch = runSim(halting, policies['linux-asi']);
    const mmSwitch = runSim(halting, linuxAsiPolicy({ exitOn: 'mm-switch' }));
    expect(everySwitch.asiExits.contextSwitch).toBeGreaterThan(0);
    expect(mmSwitch.asiExits.contextSwitch).toBe(0);
    expect(mmSwitch.l1dFlushes).toBeLessThan(everySwitch.l1dFlushes);
    expect(mmSwitch.guestWork).toBeGreaterThan(everySwitch.guestWork);
    expect(broken(everySwitch.violations)).toEqual([]);
    expect(broken(mmSwitch.violations)).toEqual([]);
  });

  it('baselines and the 2019 policies report zero IBPBs and ASI exits', () => {
    for (const name of ['none', 'asi', 'kvm-default']) {
      const result = runSim(halting, policies[name]);
      expect(result.ibpbs, name).toBe(0);
      expect(result.asiExits, name).toEqual({ pageFault: 0, interrupt: 0, contextSwitch: 0 });
      expect(result.l1dFlushes, name).toBe(result.flushes);
    }
  });

  it('a bad setting is refused by name', () => {
    expect(() => linuxAsiPolicy({ siblingProtocol: 'wait' as never })).toThrow(/siblingProtocol/);
    expect(() => linuxAsiPolicy({ exitOn: 'never' as never })).toThrow(/exitOn/);
  });
});
