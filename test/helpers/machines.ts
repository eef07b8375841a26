import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import { type ConfidentialOptions, ConfidentialVm } from '../../src/coco/confidential-vm.js';
import { parseRunConfig, type RunConfig } from '../../src/config/run-config.js';
import type { Violation } from '../../src/invariants/violation.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { kernelSpace } from '../../src/paging/address-space.js';
import { MapFlag } from '../../src/paging/entry-format.js';

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

/**
 * A planted INV-7 bug: the first pages of the page cache and the per-CPU areas mapped global (G) in
 * the kernel's direct map, so their TLB entries survive the switch into kvm:N and a handler reaches
 * host memory without a fault.
 */
export function mapHostMemoryGlobal(machine: Machine): void {
  for (const name of ['page-cache', 'percpu/0', 'percpu/1']) {
    const region = machine.region(name);
    const va = machine.regionVa(region);
    machine.pageTables.splitToBasePages(kernelSpace, va);
    for (let page = 0; page < Math.min(region.frames, 8); page++) {
      machine.pageTables.map(
        kernelSpace,
        va + page * 4096,
        region.firstPfn + page,
        MapFlag.write | MapFlag.global,
      );
    }
  }
}

/** The smallest confidential machine: one core of two threads, one SEV-SNP style VM of 2 MiB. */
export const confidentialMachine = {
  cores: 1,
  smt: 2,
  memoryMiB: 48,
  vms: [{ vcpus: 2, guestMemoryMiB: 2, confidential: true }],
};

/** A run of the snp-guest mix on `confidentialMachine`. */
export function confidentialRunConfig(
  run: Record<string, unknown>,
  confidential: Record<string, unknown> = {},
): RunConfig {
  return parseRunConfig({ machine: confidentialMachine, workload: { mix: 'snp-guest', confidential }, run });
}

/** VM 0 of `confidentialMachine` as a ConfidentialVm driven directly, its violations collected. */
export function confidentialVmFixture(options: Partial<ConfidentialOptions> = {}) {
  const machine = createMachine(confidentialMachine, { concurrent: false, access: acceleratedAccess });
  const violations: Violation[] = [];
  const vm = new ConfidentialVm(
    machine,
    0,
    machine.rmp,
    { asid: 1, hostileVmm: false, guestRevalidates: false, keepsVmmMapping: false, ...options },
    (violation) => violations.push(violation),
  );
  return { machine, vm, violations, memory: machine.region('guest-memory:0') };
}
