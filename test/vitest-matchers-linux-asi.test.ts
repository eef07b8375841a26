import { describe, expect, it } from 'vitest';
import { runSim } from '../src/backend/sim/run-sim.js';
import { parseRunConfig } from '../src/config/run-config.js';
import { policyByName } from '../src/policy/index.js';
import { plantedBug } from '../src/policy/planted.js';
import '../src/vitest.js';

/**
 * The matchers know today's Linux ASI's invariants (issue 22 item 6): INV-14 and INV-15 are ids they
 * accept, hold and report, on seeded runs (the same seed gives the same result).
 */
const config = parseRunConfig({
  machine: { cores: 1, smt: 2, memoryMiB: 40, vms: [{ vcpus: 2, guestMemoryMiB: 1 }] },
  workload: { mix: 'sysbench-cpu', exitIntervalCycles: 20_000 },
  run: { exits: 2000, seed: 31 },
});

describe('vitest matchers on linux-asi runs', () => {
  it('linux-asi holds every invariant, INV-14 and INV-15 included', () => {
    const result = runSim(config, policyByName('linux-asi'));
    expect(result).toHoldInvariants();
    expect(result).toHoldInvariants(['INV-14', 'INV-15']);
  });

  it('a policy that skips the IBPB its class asks for breaks INV-15, and the matcher names it', () => {
    const result = runSim(config, plantedBug('planted-linux-asi-user-no-guest-ibpb').policy);
    expect(result).toBreakInvariant('INV-15');
    expect(() => expect(result).toHoldInvariants(['INV-15'])).toThrow(/INV-15/);
  });

  it('a missing KERNEL_DATA taint on asi_exit breaks INV-14', () => {
    const result = runSim(config, plantedBug('planted-linux-asi-exit-no-kernel-data').policy);
    expect(result).toBreakInvariant('INV-14');
  });
});
