import { createMachine, type Machine } from '../../src/machine.js';

/** A small machine for unit tests: 2 cores x 2 threads, one VM of 4 vCPUs, 64 MiB. */
export function smallMachine(overrides: Record<string, unknown> = {}): Machine {
  return createMachine({
    cores: 2,
    smt: 2,
    memoryMiB: 64,
    vms: [{ vcpus: 4, guestMemoryMiB: 4 }],
    ...overrides,
  });
}

/** Two VMs on separate cores, for cross-VM checks. */
export function twoVmMachine(overrides: Record<string, unknown> = {}): Machine {
  return createMachine({
    cores: 2,
    smt: 2,
    memoryMiB: 64,
    vms: [
      { vcpus: 2, guestMemoryMiB: 4 },
      { vcpus: 2, guestMemoryMiB: 4 },
    ],
    ...overrides,
  });
}
